"""What keeps the dashboard safe: security headers on every response, the token that write actions need, and,
on an address beyond loopback, the token that every request needs.

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
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse

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
TOKEN_COOKIE = "hpt_dashboard_token"
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
        if not _same_token(_bearer(authorization), token):
            raise HTTPException(403, "the token does not match the one the dashboard was started with")

    return require_token


class TokenGate:
    """ASGI middleware that answers only requests carrying the token: `Authorization: Bearer <token>` or the
    cookie that opening `/?token=<token>` once sets (HttpOnly, SameSite=Strict), so that a browser's page and
    its API calls get through. Write actions still need the header, which a cookie alone never replaces.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if request.url.path == "/" and self._matches(request.query_params.get("token")):
            response: Any = RedirectResponse("/", status_code=303)
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
        elif self._matches(_bearer(request.headers.get("authorization"))) or \
                self._matches(request.cookies.get(TOKEN_COOKIE)):
            await self.app(scope, receive, send)
            return
        else:
            response = PlainTextResponse("this dashboard needs its token: open /?token=<token> once in the browser, "
                                         "or send `Authorization: Bearer <token>`", status_code=401,
                                         headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)

    def _matches(self, given: str | None) -> bool:
        return _same_token(given, self.token)


def _bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (None for any other header)."""
    scheme, _, given = (authorization or "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else None


def _same_token(given: str | None, token: str) -> bool:
    """Whether `given` is the dashboard's token (compared in constant time)."""
    return given is not None and secrets.compare_digest(given.encode(), token.encode())
