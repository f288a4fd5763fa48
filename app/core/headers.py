"""Security headers on every response: pages, the API, static files and errors.

The Content-Security-Policy allows scripts and styles from this origin only, no inline code: every
script is a file under static/ (data a page hands its script travels in <script type="application/json">
blocks, which browsers never run). Nothing may frame the app (a signed-in /account inside another
site's frame invites clickjacking); X-Frame-Options says the same to browsers that predate
frame-ancestors.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # Swagger UI's stylesheet draws its icons as data: SVGs
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SecurityHeadersMiddleware:
    """Adds SECURITY_HEADERS to each HTTP response that does not set its own value.

    Plain ASGI rather than BaseHTTPMiddleware: it only touches the response's first message, so
    streamed exports pass through unbuffered. The app's 500 page is rendered outside all middleware
    (Starlette's ServerErrorMiddleware), so app.core.errors adds the same headers there itself.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
