"""Request guards: bodies counted as they arrive, cross-origin changes refused."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from medlabel.review.guards import BodyLimit, SameOrigin


def _app(limit: int = 1000) -> TestClient:
    app = FastAPI()

    @app.post("/size")
    async def size(request: Request) -> dict[str, int]:
        return {"n": len(await request.body())}

    @app.get("/size")
    def read() -> dict[str, int]:
        return {"n": 0}

    app.add_middleware(SameOrigin)
    app.add_middleware(BodyLimit, limit=lambda path: limit)
    return TestClient(app)


def test_bodies_are_limited_whether_declared_or_streamed() -> None:
    client = _app(1000)
    assert client.post("/size", content=b"x" * 1000).json() == {"n": 1000}
    assert client.post("/size", content=b"x" * 1001).status_code == 413
    streamed = client.post("/size", content=iter([b"x" * 600, b"x" * 600]))
    assert streamed.status_code == 413 and streamed.json()["detail"] == "request body too large"
    assert client.post("/size", content=iter([b"x" * 500, b"x" * 500])).json() == {"n": 1000}


def test_only_changes_from_another_origin_are_refused() -> None:
    client = _app()
    for headers in (
        {"origin": "http://127.0.0.1:9911"},
        {"origin": "null"},  # sandboxed frames and file:// pages
        {"referer": "http://evil.example/page"},
    ):
        assert client.post("/size", headers=headers).status_code == 403, headers
        assert client.get("/size", headers=headers).status_code == 200  # reading is no change
    for headers in (
        {},  # scripts and MONAI Label clients send neither header
        {"origin": "http://testserver"},
        {"referer": "http://testserver/#item"},
        {"origin": "https://review.example", "x-forwarded-host": "review.example"},
    ):
        assert client.post("/size", headers=headers).status_code == 200, headers
