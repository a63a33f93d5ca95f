"""A request body cap that holds for chunked uploads too: an ASGI middleware that counts the bytes
as they stream in and answers 413 as soon as a body passes the cap (a ``Content-Length`` over it is
refused before any byte is read). Without it, a ``Transfer-Encoding: chunked`` body has no length
to check, and the whole of it is read (an upload spooled to /tmp) before the endpoint can refuse it.
"""

from __future__ import annotations

import json


class BodyLimit:
    """``app.add_middleware(BodyLimit, max_bytes=N)``: bodies of at most ``max_bytes`` bytes."""

    def __init__(self, app, max_bytes: int, what: str = "request body"):
        self.app, self.max_bytes, self.what = app, int(max_bytes), what

    def _detail(self) -> str:
        return f"{self.what} too large (the limit is {self.max_bytes // 1024} KB)"

    async def _refuse(self, send) -> None:
        body = json.dumps({"detail": self._detail()}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                return await self._refuse(send)
        seen, started, refused = 0, False, False

        async def counted():
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # answer 413 now; the app reads a disconnect and stops
                    refused = True
                    if not started:
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message):
            nonlocal started
            if refused:  # the 413 is out: whatever the app answers to the disconnect is dropped
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted, tracked)


__all__ = ["BodyLimit"]
