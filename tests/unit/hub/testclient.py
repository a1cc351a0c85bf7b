"""Starlette's TestClient, imported without failing the run on its httpx-versus-httpx2 notice.

Starlette now prefers the `httpx2` package and warns at import when only `httpx` is installed; with
warnings as errors that would stop collection. Once `httpx2` is in the test extra this shim can go.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient` is deprecated")
    from fastapi.testclient import TestClient

__all__ = ["TestClient"]
