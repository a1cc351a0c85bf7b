"""The web pages the hub serves itself: the HQ dashboard, the login page and the public feedback form (Jinja2
templates, static files and the chart library installed at build time; no CDN)."""
