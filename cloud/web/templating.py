"""The hub's Jinja2 templates (autoescaped) and static files, served by the hub itself: no CDN."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"

templates = Jinja2Templates(directory=TEMPLATES_DIR)
"""Every page's templates; `.html` templates are autoescaped (Starlette's default environment)."""
