"""Request guards of the review server: body size limits and cross-site request refusal.

:class:`BodyLimit` counts the bytes a request actually sends (a chunked body has no
``Content-Length`` to trust) and answers 413 once a path's limit is passed.
:class:`SameOrigin` refuses state-changing requests (POST, PUT, PATCH, DELETE) that a browser
says come from another origin (``Origin``, else ``Referer``, compared with ``Host``): a page
on another port of the same machine is the same *site* for the session cookie's
``SameSite=strict``, so the cookie alone does not stop it. Requests with neither header
(scripts, MONAI Label clients with a bearer token) pass; browsers send ``Origin`` with every
cross-origin POST.

Example:
    >>> from fastapi import FastAPI
    >>> from fastapi.testclient import TestClient
    >>> app = FastAPI()
    >>> @app.post("/echo")
    ... async def echo(body: dict) -> dict:
    ...     return body
    >>> app.add_middleware(SameOrigin)
    >>> app.add_middleware(BodyLimit, limit=lambda path: 100)
    >>> client = TestClient(app)
    >>> client.post("/echo", json={"a": 1}).status_code
    200
    >>> client.post("/echo", json={"a": 1}, headers={"origin": "http://evil:80"}).status_code
    403
    >>> client.post("/echo", content=iter([b'{"a": "' + b"x" * 200 + b'"}'])).status_code
    413
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

__all__ = ["BodyLimit", "SameOrigin"]

_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class _TooLargeError(Exception):
    pass


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class BodyLimit:
    """ASGI middleware: at most ``limit(path)`` request body bytes, declared or streamed."""

    def __init__(self, app: Any, limit: Callable[[str], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope.get("path", ""))
        length = _header(scope, b"content-length")
        if length and length.isdigit() and int(length) > limit:
            await _refuse(send, 413, "request body too large")
            return
        seen = 0
        exceeded = started = False

        async def counted() -> Any:
            nonlocal seen, exceeded
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise _TooLargeError
            return message

        async def watched(message: dict[str, Any]) -> None:
            nonlocal started
            if exceeded:  # the app answered its read error (FastAPI: 400): say what it was
                return
            started = started or message.get("type") == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLargeError:
            if started:
                raise
        if exceeded and not started:
            await _refuse(send, 413, "request body too large")


class SameOrigin:
    """ASGI middleware: refuse state-changing requests a browser marks as cross-origin."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in _UNSAFE:
            origin = _header(scope, b"origin") or _header(scope, b"referer")
            if origin is not None and not self._ours(scope, origin):
                await _refuse(send, 403, "cross-origin request refused")
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _ours(scope: Scope, origin: str) -> bool:
        hosts = {h for h in (_header(scope, b"host"), _header(scope, b"x-forwarded-host")) if h}
        return origin != "null" and urlsplit(origin).netloc.lower() in {h.lower() for h in hosts}
