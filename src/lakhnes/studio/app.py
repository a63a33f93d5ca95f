"""The studio's web app: one page and the JSON API behind it (its reference at ``/docs``, offline)."""

from __future__ import annotations

import os
import time
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.middleware.trustedhost import TrustedHostMiddleware

from lakhnes.core.score import VOICES
from lakhnes.errors import InvalidInputError
from lakhnes.studio import modes
from lakhnes.studio.body_limit import BodyLimit
from lakhnes.studio.jobs import JobQueue, QueueFull
from lakhnes.studio.songs import ID_RE, MAX_SONGS, SongStore

STATIC = Path(__file__).parent / "static"
MEDIA = {".wav": "audio/wav", ".mid": "audio/midi", ".txt": "text/plain; charset=utf-8",
         ".json": "application/json"}


class RenderRequest(BaseModel):
    mute: list[str] = []  # voices to silence: any of P1, P2, TR, NO (not all four)


def _errors(*codes: int) -> dict:
    """OpenAPI entries for the error statuses an endpoint may answer (body ``{"detail": "..."}``)."""
    what = {400: "bad option or file (the reason, naming the file)", 403: "cross-site request",
            404: "unknown id or file", 413: "upload over the size limit", 429: "too many jobs waiting"}
    return {c: {"description": what[c]} for c in codes}


def _model_name(model, model_path) -> str:
    """E.g. ``TransformerXL run1 (3.2M parameters)``."""
    kind = "TransformerXL (numpy)" if type(model).__name__ == "NumpyTXL" else type(model).__name__
    name = f"{kind} {Path(model_path).name if model_path else ''}".strip()
    count = getattr(model, "num_parameters", None)
    if not callable(count):
        return name
    n = count()
    return f"{name} ({n / 1e6:.1f}M parameters)" if n >= 1e6 else f"{name} ({n / 1e3:.0f}k parameters)"


def create_app(model_path: str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None, *,
               model=None, device: str | None = "cpu", runtime: str = "auto", limits: modes.Limits | None = None,
               trusted_hosts: list[str] | None = None, study_dir: str | os.PathLike | None = None,
               max_songs: int | None = MAX_SONGS) -> FastAPI:
    """The studio app. ``model`` (an already loaded model) wins over ``model_path``; with
    neither, the shipped default model is loaded, for ``runtime`` on ``device`` (see
    :func:`lakhnes.generate.pick_runtime`: ``auto`` is numpy on the CPU, no torch needed). Songs are written under ``out_dir``; adding
    one deletes the oldest beyond ``max_songs`` (None: keep every song).
    ``study_dir``: a listening study (``lakhnes listen setup``) to serve under ``/listen``.
    ``trusted_hosts`` limits the ``Host`` header (e.g. loopback names, against DNS rebinding);
    POSTs from another origin (a cross-site form or script) are always refused."""
    limits = limits or modes.Limits()
    if model is None:
        from lakhnes.generate import load_model
        from lakhnes.models import SHIPPED, default_model_path

        model_path = model_path or default_model_path()
        if not Path(model_path).exists() and str(model_path) not in SHIPPED:
            raise InvalidInputError("no such model (train one, or pass -m MODEL)", str(model_path))
        model = load_model(model_path, device=device, runtime=runtime)
    store = SongStore(out_dir or "lakhnes-studio", max_songs=max_songs)  # the oldest songs go beyond max_songs
    model_name = _model_name(model, model_path)

    def run_job(job, report):
        def progress(done, total):
            report(0.9 * done / max(total, 1), "generating")

        report(0.0, "generating")
        results = modes.generate(model, job.mode, job.params, job.payload, progress=progress)
        songs = []
        for k, (score, highlight) in enumerate(results):
            report(0.9 + 0.1 * k / len(results), "rendering")
            meta = {"mode": job.mode, "params": job.params, "source": job.source, "model": model_name}
            songs.append(store.add(score, meta, highlight))
        return songs

    jobs = JobQueue(run_job, max_waiting=limits.max_waiting)

    @asynccontextmanager
    async def lifespan(app):
        yield
        jobs.close()

    app = FastAPI(
        lifespan=lifespan,
        title="LakhNES Studio",
        summary="Write NES chiptunes with a Transformer-XL and hear them on the NES sound chip.",
        description="The JSON API behind the studio page. Submit a job with `POST /api/jobs`, poll "
        "`GET /api/jobs/{id}` until its status is `done`, then fetch its songs' files.",
        version="1",
        docs_url=None,  # the API reference is /docs, served from the package (Swagger UI needs a CDN)
        redoc_url=None,
    )
    app.state.jobs, app.state.store, app.state.limits, app.state.model = jobs, store, limits, model

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
        size = request.headers.get("content-length")
        if request.method == "POST" and size and size.isdigit() and int(size) > limits.max_upload_bytes + 65536:
            return JSONResponse({"detail": f"upload too large (the limit is "
                                 f"{limits.max_upload_bytes // 1024} KB)"}, status_code=413)
        return await call_next(request)

    if trusted_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=trusted_hosts)
    # outermost: the cap holds for chunked bodies too (counted as they stream; Content-Length checked first)
    app.add_middleware(BodyLimit, max_bytes=limits.max_upload_bytes + 65536, what="upload")

    # ------------------------------------------------------------------ page
    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    def reference():  # the API reference, drawn from /openapi.json by the page itself: works offline
        return FileResponse(STATIC / "reference.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if study_dir is not None:  # the listening study's page and API (lakhnes serve --study DIR)
        from lakhnes.studio.listen_routes import listen_router

        listen = listen_router(study_dir)
        app.include_router(listen)
        app.state.study = listen.study

    # ------------------------------------------------------------------ API
    @app.get("/api/info", summary="Model, modes and limits")
    def info():
        return {
            "model": model_name,
            "voices": list(VOICES),
            "modes": [{"id": k, "label": label, "needs_file": f} for k, (label, f) in modes.MODES.items()],
            "limits": {"max_seconds": limits.max_seconds, "max_num": limits.max_num,
                       "max_upload_bytes": limits.max_upload_bytes},
        }

    @app.post("/api/jobs", status_code=202, summary="Start a generation job",
              responses=_errors(400, 403, 413, 429))
    async def create_job(
        mode: str = Form(..., description="new, continue, rhythm or accompany"),
        seconds: float | None = Form(None, description="seconds of new music (rhythm/accompany: of the "
                                     "upload used); default 10 or the limit"),
        temperature: float = Form(0.95),
        top_k: int = Form(32, description="0 turns top-k off"),
        top_p: float | None = Form(None),
        seed: int | None = Form(None),
        num: int = Form(1, description="how many songs"),
        prime_seconds: float | None = Form(None, description="continue: seconds of the upload to prime with"),
        keep: str = Form("", description="accompany: voices to keep, comma separated (P1,P2,TR,NO)"),
        voices: str = Form("", description="new, continue, accompany: the voices the song uses, comma "
                           "separated (default: all four for a new song; the upload's otherwise); each enters "
                           "within 1 s and rests at most max_rest"),
        max_rest: float | None = Form(None, description="the longest rest of those voices, seconds (default 8.4)"),
        map: str = Form("", description="for a MIDI file without NES tracks: which track plays which voice, "
                        "e.g. 0=P1,1=TR,2=- (track index or name; - leaves it out; voices not named are filled "
                        "automatically); see POST /api/tracks"),
        file: UploadFile | None = File(None, description="any MIDI (mapped onto the NES voices), NES-MDB MIDI, "
                                       "an NES VGM rip (.vgm, .vgz), FamiTracker text or TX1 (.tx1.txt), at most 2 MB"),
    ):
        """Checks the options and the uploaded file at once, then queues the job: one job runs at
        a time. Answers the job (`id`, `status`, `position` in the queue); poll
        `GET /api/jobs/{id}`. `continue`, `rhythm` and `accompany` need a file; without a
        `seed` one is picked and recorded."""
        keep_list = [v.strip().upper() for v in keep.split(",") if v.strip()]
        voice_list = [v.strip().upper() for v in voices.split(",") if v.strip()] or None
        seconds = min(10.0, limits.max_seconds) if seconds is None else seconds
        try:
            params = modes.check_params(mode, seconds=seconds, temperature=temperature, top_k=top_k,
                                        top_p=top_p, seed=seed, num=num, prime_seconds=prime_seconds,
                                        keep=keep_list, limits=limits, voices=voice_list, max_rest=max_rest)
        except InvalidInputError as e:
            raise HTTPException(400, str(e)) from None
        score = source = None
        if file is not None and file.filename:
            source = modes.clean_name(file.filename)
            data = await file.read(limits.max_upload_bytes + 1)
            if len(data) > limits.max_upload_bytes:
                raise HTTPException(413, f"{source}: file too large (the limit is "
                                    f"{limits.max_upload_bytes // 1024} KB)")
            try:
                score, used = modes.load_upload(data, source, limits, mapping=map.strip() or None, with_mapping=True)
            except InvalidInputError as e:
                raise HTTPException(400, str(e)) from None
            if used is not None:  # a MIDI mapped onto the NES voices: recorded, and (as in the CLI) the
                params["map"] = used.spec()  # model writes all four voices unless the page names them
                if mode != "rhythm" and params.get("voices") is None:
                    params["voices"] = list(VOICES)
        if modes.MODES[mode][1] and score is None:
            raise HTTPException(400, f"mode {mode!r} needs a song file (MIDI, VGM, FamiTracker text or TX1)")
        try:
            job = jobs.submit(mode, params, score, source)
        except QueueFull as e:
            raise HTTPException(429, str(e)) from None
        return jobs.public(job)

    @app.post("/api/tracks", summary="An upload's tracks and their automatic voices", responses=_errors(400, 403, 413))
    async def tracks(file: UploadFile = File(..., description="the MIDI file the page will send with a job")):
        """For a MIDI file without NES tracks: `tracks` (index, name, drum, notes, low, high, first
        note in s, `voice`: P1, P2, TR, NO or null) as mapped automatically, and `map`, the same as
        the `map` field of `POST /api/jobs`. NES-MDB MIDI and TX1 need no mapping: `mapped` is false."""
        source = modes.clean_name(file.filename)
        data = await file.read(limits.max_upload_bytes + 1)
        if len(data) > limits.max_upload_bytes:
            raise HTTPException(413, f"{source}: file too large (the limit is {limits.max_upload_bytes // 1024} KB)")
        try:
            return modes.upload_tracks(data, source, limits)
        except InvalidInputError as e:
            raise HTTPException(400, str(e)) from None

    @app.get("/api/jobs/{job_id}", summary="A job's status, progress and, when done, its songs",
             responses=_errors(404))
    def get_job(job_id: str):
        """`status` is queued, running, done or failed (`error` says why); `progress` runs
        0-1; when done, `songs` holds each song's metadata, notes and file URLs."""
        job = jobs.get(job_id) if ID_RE.fullmatch(job_id) else None
        if job is None:
            raise HTTPException(404, "no such job")
        return jobs.public(job)

    @app.get("/api/songs", summary="The session's songs, newest first (no notes)")
    def list_songs():
        """Every song in the studio's folder, newest first."""
        return store.list()

    @app.get("/api/songs/{song_id}", summary="One song: metadata, notes and file URLs", responses=_errors(404))
    def get_song(song_id: str):
        """`notes.voices[V]` holds columns `start`, `end` (seconds) and `pitch`;
        `highlight` marks what came from the upload (`span` in seconds, or kept `voices`)."""
        try:
            return store.get(song_id)
        except KeyError:
            raise HTTPException(404, "no such song") from None

    @app.post("/api/songs/{song_id}/render", summary="Render the song with some voices muted",
              responses=_errors(400, 403, 404))
    def render(song_id: str, req: RenderRequest):
        """Renders on the NES synth once (then cached) and answers the WAV's `url`."""
        t = time.perf_counter()
        try:
            name = store.render(song_id, req.mute)
        except KeyError:
            raise HTTPException(404, "no such song") from None
        except InvalidInputError as e:
            raise HTTPException(400, str(e)) from None
        return {"url": f"/api/files/{song_id}/{name}", "mute": [v for v in VOICES if v in req.mute],
                "seconds_taken": round(time.perf_counter() - t, 3)}

    @app.get("/api/files/{song_id}/{name}", summary="A song's file (WAV, MIDI, TX1, JSON)",
             responses=_errors(404))
    def get_file(song_id: str, name: str, download: bool = False):
        """`name`: song.wav, song.mid, song.tx1.txt, song.json or a muted render
        (mute-P1-NO.wav); `download=true` asks the browser to save it."""
        try:
            path = store.file_path(song_id, name)
        except KeyError:
            raise HTTPException(404, "no such file") from None
        media = MEDIA.get(path.suffix, "application/octet-stream")
        nice = f"lakhnes-{song_id}{name[4:] if name.startswith('song') else '-' + name}"
        return FileResponse(path, media_type=media, filename=nice if download else None,
                            content_disposition_type="attachment" if download else "inline")

    return app
