"""What keeps the dashboard safe: security headers on every response, and the token that write actions need.

The Content-Security-Policy allows scripts only from the dashboard's own files: an inline script or an
event handler that a hostile name might smuggle into the page does not run. `'unsafe-eval'` is there
because plotly's WebGL charts (parallel coordinates) compile their shaders' glue code with `Function`;
it lets the page's own scripts evaluate strings, not markup run code.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Header, HTTPException
from starlette.datastructures import MutableHeaders

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
READ_ONLY = "read-only: start the dashboard with --token to allow pause, activate and cancel"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SecurityHeaders:
    """ASGI middleware that puts SECURITY_HEADERS on every HTTP response."""

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
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def token_guard(token: str | None) -> Callable[..., None]:
    """A FastAPI dependency that lets a request through only with `Authorization: Bearer <token>`.

    Without a configured token every write is refused (403, read-only); without the header 401; with a
    wrong token 403.
    """

    def require_token(authorization: str | None = Header(default=None)) -> None:
        if token is None:
            raise HTTPException(403, READ_ONLY)
        if authorization is None:
            raise HTTPException(401, "this action needs the dashboard's token: send `Authorization: Bearer <token>`",
                                headers={"WWW-Authenticate": "Bearer"})
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), token.encode()):
            raise HTTPException(403, "the token does not match the one the dashboard was started with")

    return require_token
