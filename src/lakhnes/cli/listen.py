"""``lakhnes listen``: the paper's listening studies (Turing test, preference test) with your systems.

    lakhnes listen setup --real DIR --system NAME=DIR_OR_MODEL [--system ...] -o STUDY
    lakhnes listen serve STUDY            # the page for listeners; prints the results link
    lakhnes listen results STUDY [--csv answers.csv] [--png results.png]
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import sys
from pathlib import Path

from lakhnes.cli.common import fail, usage_error

#: Host headers accepted when serving on a loopback address (refuses DNS-rebinding pages)
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]


def register(sub) -> None:
    p = sub.add_parser("listen", help="listening studies: a Turing test and a preference test in the browser",
                       description="The LakhNES listening studies: set a study up from your systems, serve "
                       "its page to listeners, read the results.")
    s = p.add_subparsers(dest="listen_command", metavar="STEP")

    st = s.add_parser("setup", help="cut, render and loudness-match the clips of a new study folder")
    st.add_argument("--real", required=True, metavar="DIR", help="folder of real NES-MDB songs (MIDI, TX1 or WAV)")
    st.add_argument("--system", action="append", default=[], metavar="NAME=DIR_OR_MODEL",
                    help="a system to study: a folder of its songs (MIDI, TX1 or WAV), or a model (run folder, "
                    "checkpoint folder, .safetensors, or a shipped model's name such as 'default') whose songs are "
                    "generated now; repeat for each system")
    st.add_argument("-o", "--output", required=True, metavar="STUDY", help="new folder for the study")
    st.add_argument("--tests", default="turing,preference", help="turing, preference or both (default)")
    st.add_argument("--clips", type=int, default=20,
                    help="clips per system and test (Turing: the real songs give clips × (systems + 1)); default 20")
    st.add_argument("--turing-seconds", type=float, default=5.0, help="Turing test clip length (default 5)")
    st.add_argument("--preference-seconds", type=float, default=10.0, help="preference test clip length (default 10)")
    st.add_argument("--pairs", type=int, default=10, help="pairs per batch (default 10)")
    st.add_argument("--controls", type=int, default=2, help="control pairs (real vs random) per batch (default 2)")
    st.add_argument("--turing-min-batches", type=int, default=3,
                    help="Turing test: batches a listener must finish, every control right, to count (default 3)")
    st.add_argument("--preference-min-batches", type=int, default=1,
                    help="preference test: batches a listener must finish to count (default 1)")
    st.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    st.add_argument("--target-dbfs", type=float, default=-24.0, help="every clip's RMS level (default -24 dBFS)")
    st.add_argument("--song-seconds", type=float, default=None,
                    help="length of the songs models and the random model write (default: twice the longest clip)")
    g = st.add_argument_group("model systems (generation)")
    g.add_argument("--temperature", type=float, default=0.95, help="sampling temperature (default 0.95)")
    g.add_argument("--top-k", type=int, default=32, help="top-k (default 32; 0 turns it off)")
    g.add_argument("--device", default="cpu", help="torch device for generation (default cpu)")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 1)")
    st.set_defaults(func=run_setup)

    sv = s.add_parser("serve", help="serve a study's page to listeners")
    sv.add_argument("study", metavar="STUDY", help="study folder (from lakhnes listen setup)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    sv.set_defaults(func=run_serve)

    rs = s.add_parser("results", help="print a study's results; write the CSV of every answer and the figure")
    rs.add_argument("study", metavar="STUDY", help="study folder")
    rs.add_argument("--csv", metavar="FILE", help="write every answer (and whether it counts) as CSV")
    rs.add_argument("--png", metavar="FILE", help="write the figure (bars with standard-error whiskers)")
    rs.add_argument("--json", metavar="FILE", help="write the results as JSON")
    rs.add_argument("--turing-min-batches", type=int, default=None, help="override the study's setting")
    rs.add_argument("--preference-min-batches", type=int, default=None, help="override the study's setting")
    rs.set_defaults(func=run_results)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _model_at(where: str) -> Path | None:
    """The checkpoint folder ``where`` names (a run or checkpoint folder, a .safetensors file or a
    shipped model's name), or None when it is no model."""
    from lakhnes.errors import InvalidInputError
    from lakhnes.models import default_model_path, resolve_checkpoint

    try:
        return resolve_checkpoint(where)
    except InvalidInputError:
        if where == "default" and not Path(where).exists():
            return default_model_path()
        return None


def _model_maker(path: Path, args):
    """Songs from a model: ``lakhnes.generate.sample`` in batches of 8 streams, saved as MIDI."""

    def make(folder: Path, n: int, seconds: float, seed: int) -> None:
        from lakhnes.formats.midi import write_midi
        from lakhnes.generate import load_model, sample, set_threads

        set_threads(args.threads)
        model = load_model(path, device=args.device)
        folder.mkdir(parents=True, exist_ok=True)
        for start in range(0, n, 8):
            k = min(8, n - start)
            songs = sample(model, seconds=seconds, temperature=args.temperature, top_k=args.top_k or None,
                           seed=(seed + start) % 2**31, num=k)
            for j, song in enumerate(songs):
                write_midi(song, folder / f"{start + j:03d}.mid")
            print(f"  {start + k}/{n} songs", file=sys.stderr)

    return make


def run_setup(args) -> int:
    from lakhnes.errors import InvalidInputError
    from lakhnes.listen.study import Settings, SystemSpec, setup_study

    tests = tuple(t.strip() for t in args.tests.split(",") if t.strip())
    try:
        settings = Settings(seed=args.seed, tests=tests, turing_seconds=args.turing_seconds,
                            preference_seconds=args.preference_seconds, clips=args.clips, pairs=args.pairs,
                            controls=args.controls, turing_min_batches=args.turing_min_batches,
                            preference_min_batches=args.preference_min_batches, target_dbfs=args.target_dbfs,
                            song_seconds=args.song_seconds).check()
    except InvalidInputError as e:
        return usage_error(f"--{e.path.replace('_', '-')}: {e.reason}")
    if not 0.05 <= args.temperature <= 2:
        return usage_error(f"--temperature: {args.temperature:g} is outside 0.05-2")
    if not 0 <= args.top_k <= 631:
        return usage_error(f"--top-k: {args.top_k} is outside 0-631")
    if not args.system:
        return usage_error("give at least one --system NAME=DIR_OR_MODEL to compare with the real songs")
    systems = []
    for spec in args.system:
        name, eq, where = spec.partition("=")
        if not eq or not name or not where:
            return usage_error(f"--system {spec!r}: write NAME=DIR_OR_MODEL")
        model = _model_at(where)
        if model is not None:
            info = {"model": str(model.resolve()), "temperature": args.temperature, "top_k": args.top_k}
            systems.append(SystemSpec(name, make_songs=_model_maker(model, args), info=info))
        elif Path(where).is_dir():
            systems.append(SystemSpec(name, folder=Path(where)))
        else:
            return usage_error(f"--system {spec!r}: {where}: no such folder or model")
    try:
        study = setup_study(args.output, args.real, systems, settings, log=lambda m: print(m, file=sys.stderr))
    except InvalidInputError as e:
        fail(str(e))
        return 1
    except OSError as e:
        fail(f"{args.output}: cannot write the study ({e.strerror or e})")
        return 1
    n = len(study.clips)
    print(f"{args.output}: {n} clips; serve it with: lakhnes listen serve {args.output}")
    return 0


def run_serve(args) -> int:
    try:
        import uvicorn

        from lakhnes.studio.listen_routes import create_listen_app
    except ImportError as e:
        return usage_error(f"the study page needs FastAPI and uvicorn ({e.name} is missing): "
                           "pip install 'lakhnes[studio]'")
    from lakhnes.errors import InvalidInputError

    if not 0 < args.port < 65536:
        return usage_error(f"--port {args.port} is outside 1-65535")
    loopback = _is_loopback(args.host)
    from lakhnes.cli.serve import _listen_socket

    try:  # the port first: a busy one fails here, in one line, before any banner (as `lakhnes serve`)
        sock = _listen_socket(args.host, args.port)
    except OSError as e:
        fail(f"{args.host}:{args.port}: cannot listen ({e.strerror or e}); is another server running? "
             "Pick another --port")
        return 1
    try:
        app = create_listen_app(args.study, trusted_hosts=LOOPBACK_NAMES if loopback else None)
    except InvalidInputError as e:
        sock.close()
        fail(str(e))
        return 1
    except OSError as e:
        sock.close()
        fail(f"{args.study}: cannot open the study ({e.strerror or e})")
        return 1
    if not loopback:
        print(f"warning: listening on {args.host}: anyone who can reach this machine can take part")
    url = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}"
    key = app.state.study.key
    print(f"Listening study: {url}/listen/  (results: {url}/listen/results?key={key}; answers go to "
          f"{Path(args.study) / 'answers.sqlite'}; Ctrl+C stops)")
    uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")).run(sockets=[sock])
    return 0


def run_results(args) -> int:
    from lakhnes.errors import InvalidInputError
    from lakhnes.io import write_bytes_atomic, write_text_atomic
    from lakhnes.listen import results as R
    from lakhnes.listen.store import Store, answers_csv
    from lakhnes.listen.study import Study

    try:
        study = Study(args.study)
        over = {k: getattr(args, k) for k in ("turing_min_batches", "preference_min_batches")
                if getattr(args, k) is not None}
        settings = dataclasses.replace(study.settings, **over).check()
    except InvalidInputError as e:
        if e.path in ("turing_min_batches", "preference_min_batches"):
            return usage_error(f"--{e.path.replace('_', '-')}: {e.reason}")
        fail(str(e))
        return 1
    db = study.root / "answers.sqlite"
    try:
        rows = Store(db).answers() if db.exists() else []
    except InvalidInputError as e:
        fail(str(e))
        return 1
    res = R.analyse(rows, settings, {t: study.compared(t) for t in settings.tests})
    print(R.markdown(res))
    try:
        if args.csv:
            counted = {i for r in res.values() for i in r["counted_ids"]}
            write_text_atomic(args.csv, answers_csv(rows, counted))
            print(f"wrote {args.csv} ({len(rows)} answers)", file=sys.stderr)
        if args.png:
            write_bytes_atomic(args.png, R.figure_png(res))
            print(f"wrote {args.png}", file=sys.stderr)
        if args.json:
            write_text_atomic(args.json, json.dumps(res, indent=1) + "\n")
            print(f"wrote {args.json}", file=sys.stderr)
    except OSError as e:
        fail(f"{e.filename or 'output'}: cannot write ({e.strerror or e})")
        return 1
    return 0


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
