"""``lakhnes serve``: the studio, a local web page to generate and hear chiptunes."""

from __future__ import annotations

import ipaddress
import socket

from lakhnes.cli.common import check_device, fail, usage_error
from lakhnes.studio import MAX_SONGS

#: Host headers accepted when serving on a loopback address (refuses DNS-rebinding pages)
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]


def register(sub) -> None:
    p = sub.add_parser("serve", help="start the studio: a local web page to generate, hear and download songs")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("-m", "--model", default=None, metavar="MODEL",
                   help="run folder, model folder (one weights file or shards), .safetensors, or a packaged "
                        "model: default, large (default: the shipped model)")
    p.add_argument("-o", "--output", default="lakhnes-studio", metavar="DIR",
                   help="folder for the generated songs (default: ./lakhnes-studio)")
    p.add_argument("--runtime", choices=("auto", "numpy", "torch"), default="auto",
                   help="auto (default): numpy on the CPU for a Transformer-XL (no PyTorch needed), torch on a GPU "
                        "or for other models; numpy or torch forces one")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--max-seconds", type=float, default=120.0, help="longest song a request may ask for")
    p.add_argument("--max-songs", type=int, default=MAX_SONGS, metavar="N",
                   help=f"songs the output folder keeps; the oldest are deleted beyond N (default {MAX_SONGS})")
    p.add_argument("--study", default=None, metavar="STUDY",
                   help="also serve a listening study (lakhnes listen setup) at /listen/")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        import uvicorn

        from lakhnes.studio.app import create_app
        from lakhnes.studio.modes import Limits
    except ImportError as e:
        return usage_error(f"the studio needs FastAPI and uvicorn ({e.name} is missing): "
                           "pip install 'lakhnes[studio]'")
    if not 0 < args.port < 65536:
        return usage_error(f"--port {args.port} is outside 1-65535")
    if args.max_seconds < 1:
        return usage_error("--max-seconds must be at least 1")
    if args.max_songs < 1:
        return usage_error("--max-songs must be at least 1")
    problem = check_device(args.device)
    if problem:
        return usage_error(problem)
    try:  # the port first: a busy one fails here, before the model loads and before any banner
        sock = _listen_socket(args.host, args.port)
    except OSError as e:
        fail(f"{args.host}:{args.port}: cannot listen ({e.strerror or e}); is another `lakhnes serve` running? "
             "Pick another --port")
        return 1
    if args.threads is not None:
        if args.threads < 1:
            return usage_error("--threads must be at least 1")
        from lakhnes.generate import set_threads

        set_threads(args.threads)
    from lakhnes.errors import InvalidInputError

    try:
        app = create_app(args.model, args.output, device=args.device, runtime=args.runtime, limits=Limits(max_seconds=args.max_seconds),
                         trusted_hosts=LOOPBACK_NAMES if _is_loopback(args.host) else None, study_dir=args.study,
                         max_songs=args.max_songs)
    except InvalidInputError as e:
        sock.close()
        fail(str(e))
        return 1
    except OSError as e:
        sock.close()
        fail(f"{args.output}: cannot use the output folder ({e.strerror or e})")
        return 1
    if not _is_loopback(args.host):
        print(f"warning: listening on {args.host}: anyone who can reach this machine can use the studio")
    url = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}"
    print(f"LakhNES Studio: {url}/  (API: {url}/docs; songs go to {args.output}/songs; Ctrl+C stops)")
    if args.study:
        print(f"Listening study: {url}/listen/  (results: {url}/listen/results?key={app.state.study.key})")
    uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")).run(sockets=[sock])
    return 0


def _listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port), as uvicorn binds one (it starts listening on it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free; a listening one not
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
