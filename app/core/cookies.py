"""Cookies that stay on TLS when the site is served over it."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _with_secure(value: bytes) -> bytes:
    attributes = {part.strip().lower() for part in value.split(b";")[1:]}
    return value if b"secure" in attributes else value + b"; secure"


class SecureCookiesOverHttps:
    """Marks every cookie Secure on a response to an https request, so the browser never sends it
    over plain http. The scheme is https behind a TLS proxy too when uvicorn trusts that proxy's
    X-Forwarded-Proto (FORWARDED_ALLOW_IPS); SECURE_COOKIES covers a proxy it does not trust."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, _with_secure(value) if name.lower() == b"set-cookie" else value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, send_secure)
