"""The listening studies' page and API under ``/listen`` (a router for any FastAPI app, and a
standalone app for ``lakhnes listen serve``; ``lakhnes serve --study DIR`` adds it to the studio).

What a listener's browser can learn before answering: the question, the clip length and two audio
URLs per pair, each an opaque per-pair token (``/listen/api/audio/<token>``). No system name,
clip id, song, offset or control flag reaches the page, and the audio responses carry no dates
(all clips have the same length and level). Answers get no feedback. Results, the figure and
the CSV export need the study's key (``lakhnes listen serve`` prints the results link).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware

from lakhnes.listen import results as R
from lakhnes.listen.store import Conflict, NotFound, Store, answers_csv
from lakhnes.listen.study import TESTS, Study
from lakhnes.studio.body_limit import BodyLimit

STATIC = Path(__file__).parent / "static"
ID = r"^[0-9a-f]{16}$"
NO_STORE = {"Cache-Control": "no-store"}
#: the largest request body the study reads (its requests are small JSON objects)
MAX_BODY_BYTES = 64 * 1024


class BatchRequest(BaseModel):
    test: Literal["turing", "preference"]


class AnswerRequest(BaseModel):
    listener: str = Field(pattern=ID)
    batch: str = Field(pattern=ID)
    pair: int = Field(ge=0, le=1000)
    choice: Literal["a", "b"]


def listen_router(study_dir: str | os.PathLike) -> APIRouter:
    """The ``/listen`` routes of the study in ``study_dir`` (answers in its ``answers.sqlite``)."""
    study = Study(study_dir)
    store = Store(study.root / "answers.sqlite")
    s = study.settings
    router = APIRouter(prefix="/listen", tags=["listening study"])
    router.study, router.store = study, store  # for scripts and tests

    def public(batch: dict) -> dict:
        test = batch["test"]
        return {
            "id": batch["id"], "test": test, "number": batch["number"], "question": TESTS[test]["question"],
            "seconds": s.seconds(test), "next": batch["next"],
            "pairs": [{"pair": p["pair"], "answered": p["answered"], "a": f"/listen/api/audio/{p['token_a']}",
                       "b": f"/listen/api/audio/{p['token_b']}"} for p in batch["pairs"]],
        }

    def check_key(key: str) -> None:
        if not secrets.compare_digest(key.encode(), study.key.encode()):
            raise HTTPException(403, "the results need the study's key (lakhnes listen serve prints the link)")

    def analysed() -> tuple[dict, list[dict]]:
        rows = store.answers()
        return R.analyse(rows, s, {t: study.compared(t) for t in s.tests}), rows

    @router.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "listen.html", headers={"Cache-Control": "no-cache"})

    @router.get("/results", include_in_schema=False)
    def results_page():
        return FileResponse(STATIC / "listen-results.html", headers={"Cache-Control": "no-cache"})

    @router.get("/api/info", summary="The study's tests, questions and batch sizes (no system names)")
    def info():
        return {"tests": [{"id": t, "label": TESTS[t]["label"], "question": TESTS[t]["question"],
                           "seconds": s.seconds(t), "min_batches": s.min_batches(t)} for t in s.tests],
                "pairs": s.pairs}

    @router.post("/api/listeners", status_code=201, summary="A new listener id")
    def new_listener():
        """Answers `{"id": ...}`; the page keeps it in the browser's local storage."""
        return {"id": store.new_listener()}

    @router.get("/api/listeners/{listener}", summary="A listener's batches: done and open, per test")
    def listener_state(listener: str):
        if not store.has_listener(listener):
            raise HTTPException(404, "no such listener")
        out = {}
        for t in s.tests:
            b = store.open_batch(listener, t)
            out[t] = {"batches_done": store.batches_done(listener, t),
                      "open": None if b is None else {"number": b["number"],
                                                      "answered": sum(p["answered"] for p in b["pairs"])}}
        return {"id": listener, "tests": out}

    @router.post("/api/listeners/{listener}/batches", summary="The listener's open batch, or a new one")
    def start_batch(listener: str, req: BatchRequest):
        """The unanswered batch of this test if there is one (after a restart too), else a new one
        drawn for this listener. `next` is the first unanswered pair."""
        if req.test not in s.tests:
            raise HTTPException(400, f"test: this study has no {req.test} test")
        try:
            b = store.start_batch(listener, req.test, lambda n, heard: study.compose(req.test, listener, n, heard))
        except NotFound as e:
            raise HTTPException(404, str(e)) from None
        return public(b) | {"batches_done": store.batches_done(listener, req.test)}

    @router.post("/api/answers", summary="Record one answer")
    def answer(req: AnswerRequest):
        """Stored (and on disk) before this answers. Both clips of the pair must have been fetched
        (else 409). `next`: the batch's next unanswered pair, null when the batch is finished. Answering a pair again with the same choice is harmless;
        with the other choice it is refused (409)."""
        try:  # heard: both clips fetched (the page asks the same, but the server decides)
            return store.answer(req.listener, req.batch, req.pair, req.choice, heard=True)
        except NotFound as e:
            raise HTTPException(404, str(e)) from None
        except Conflict as e:
            raise HTTPException(409, str(e)) from None

    @router.get("/api/audio/{token}", summary="One clip of a pair (WAV)")
    def audio(token: str):
        clip = store.fetch(token) if len(token) == 24 and token.isalnum() else None
        if clip is None:
            raise HTTPException(404, "no such clip")
        data = study.clip_path(clip).read_bytes()
        return Response(data, media_type="audio/wav", headers={"Cache-Control": "private, max-age=86400"})

    @router.get("/api/results", summary="Results per test (needs the study's key)")
    def results(key: str = ""):
        check_key(key)
        res, _ = analysed()
        for r in res.values():
            del r["counted_ids"]
        return JSONResponse(res, headers=NO_STORE)

    @router.get("/api/results.png", summary="The results figure (needs the study's key)")
    def results_png(key: str = ""):
        check_key(key)
        return Response(R.figure_png(analysed()[0]), media_type="image/png", headers=NO_STORE)

    @router.get("/api/answers.csv", summary="Every answer as CSV (needs the study's key)")
    def export(key: str = ""):
        check_key(key)
        res, rows = analysed()
        counted = {i for r in res.values() for i in r["counted_ids"]}
        return Response(answers_csv(rows, counted), media_type="text/csv",
                        headers=NO_STORE | {"Content-Disposition": 'attachment; filename="answers.csv"'})

    return router


def create_listen_app(study_dir: str | os.PathLike, trusted_hosts: list[str] | None = None) -> FastAPI:
    """The listening study alone (no model loaded): ``/`` leads to ``/listen/``."""
    router = listen_router(study_dir)
    app = FastAPI(title="LakhNES listening study", version="1",
                  description="The LakhNES listening studies: a Turing test and a preference test.")
    app.state.study, app.state.store = router.study, router.store

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError):
        e = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in e.get("loc", ())[1:]) or "request"
        return JSONResponse({"detail": f"{where}: {e.get('msg', 'invalid value')}"}, status_code=400)

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        origin = request.headers.get("origin")
        if request.method == "POST" and origin and urlsplit(origin).netloc != request.headers.get("host"):
            return JSONResponse({"detail": "cross-site request refused"}, status_code=403)
        return await call_next(request)

    if trusted_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=trusted_hosts)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)  # outermost: counts chunked bodies as they stream

    @app.get("/", include_in_schema=False)
    def root():
        return RedirectResponse("/listen/")

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


__all__ = ["listen_router", "create_listen_app"]
