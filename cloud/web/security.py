"""Headers every HTML page of the hub carries: no script but the hub's own files, no framing, no sniffing.

A pure ASGI middleware (no per-request task, unlike Starlette's BaseHTTPMiddleware); it leaves a page's own
Content-Security-Policy alone and touches nothing but `text/html` answers, nor the OpenAPI pages (`exempt`: FastAPI's
/docs and /redoc load their viewers from a CDN; the hub's own pages never do).
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_HEADERS = {
    # Scripts, styles, images and connections from the hub itself only: anything injected into a page cannot run.
    "content-security-policy": "default-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


class PageHeaders:
    """Adds PAGE_HEADERS (those not set already) to every `text/html` response but those of the `exempt` paths."""

    def __init__(self, app: ASGIApp, exempt: Collection[str] = ()) -> None:
        self.app = app
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if headers.get("content-type", "").startswith("text/html"):
                    for name, value in PAGE_HEADERS.items():
                        if name not in headers:
                            headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
