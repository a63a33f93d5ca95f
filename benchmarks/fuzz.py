"""The large fuzz run: N seeded mutations of real files through ``lakhnes`` commands.

    nice -n 19 python benchmarks/fuzz.py --cases 10000 --seed 1 --workers 2

Seed files: the committed fixtures, plus (with ``--data``, default ``../shared/data``) ``--shared``
NES-MDB songs and ``--shared`` multitrack files (Lakh, POP909, JS-fakes) drawn from its archives.
Cases are made by ``tests/fuzzing.py`` (the same mutations and judge as ``tests/test_fuzz.py``):
``encode`` / ``decode`` / ``synth`` one file, ``generate --prime`` one file (a tiny untrained
Transformer-XL reads the prime and adds 4 tokens), ``prepare lakh`` a folder of 2-20 files.

Each worker process runs a range of cases in-process and reports one JSON line per case; a case
past ``--timeout`` is a hang (the worker stops it with an alarm, or the parent kills the worker and
starts a new one after it), a worker that dies mid-case is a crash. Prints a Markdown table:
inputs, converted, clean failures, crashes, hangs, other defects; ``--json`` keeps every outcome and
``--keep DIR`` the input files of every defect.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fuzzing import TARGETS, Outcome, make_case, run_case, seed_files  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"


def _seeds(args):
    shared = Path(args.data) if args.data and Path(args.data).exists() else None
    import random

    return seed_files(FIXTURES, shared, args.shared if shared else 0, random.Random(args.seed))


def worker(args) -> None:
    """Run cases ``start`` .. ``stop - 1``; print each outcome as a JSON line."""
    import torch

    from lakhnes.models import build_model, save_model

    torch.set_num_threads(1)
    seeds = _seeds(args)
    with tempfile.TemporaryDirectory(prefix="lakhnes-fuzz-") as tmp:
        torch.manual_seed(0)
        model = args.model or str(save_model(build_model("transformer_xl", "tiny"), Path(tmp) / "model"))
        print(json.dumps({"ready": True}), flush=True)
        for k in range(args.start, args.stop):
            try:
                case = make_case(seeds, k, args.seed)
            except Exception as e:  # noqa: BLE001 - a bug of the fuzzer, reported apart from lakhnes' own
                print(json.dumps({"id": k, "target": "?", "fuzzer_error": f"{type(e).__name__}: {e}"}), flush=True)
                continue
            out = run_case(case, Path(tmp) / "work", model, timeout=args.timeout)
            print(out.to_json(), flush=True)


def _spawn(args, start: int, stop: int) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--worker", "--seed", str(args.seed), "--start", str(start), "--stop",
           str(stop), "--timeout", str(args.timeout), "--data", args.data or "", "--shared", str(args.shared)]
    if args.model:
        cmd += ["--model", args.model]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)


def run(args) -> list[dict]:
    """Split the cases over ``--workers`` processes; restart a worker after a crash or a hang."""
    bounds = [round(i * args.cases / args.workers) for i in range(args.workers + 1)]
    todo = [[a, b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    results: dict[int, dict] = {}
    procs = {}  # fd -> (proc, range, last report time, ready)
    for r in todo:
        p = _spawn(args, *r)
        procs[p.stdout.fileno()] = [p, r, time.monotonic(), False]
    grace = args.timeout + 60
    done_at = time.monotonic()
    while procs:
        ready, _, _ = select.select(list(procs), [], [], 5.0)
        now = time.monotonic()
        for fd in ready:
            p, r, _, _ = procs[fd]
            line = p.stdout.readline()
            if line:
                procs[fd][2] = now
                d = json.loads(line)
                if d.get("ready"):
                    procs[fd][3] = True
                    continue
                results[d["id"]] = d
                r[0] = d["id"] + 1
                if len(results) % 500 == 0:
                    print(f"{len(results)} cases, {now - done_at:.0f} s", file=sys.stderr, flush=True)
                continue
            p.wait()  # the worker ended: finished, or died in the middle of case r[0]
            del procs[fd]
            if r[0] < r[1]:
                results[r[0]] = asdict(Outcome(r[0], "?", traceback=True,
                                               message=f"worker died (exit {p.returncode})")) | {"crash": True}
                r[0] += 1
                if r[0] < r[1]:
                    q = _spawn(args, *r)
                    procs[q.stdout.fileno()] = [q, r, time.monotonic(), False]
        for fd, (p, r, last, is_ready) in list(procs.items()):
            if is_ready and now - last > grace:  # stuck where the alarm cannot reach (in C code)
                p.kill()
                p.wait()
                del procs[fd]
                results[r[0]] = asdict(Outcome(r[0], "?", hang=True, message="killed by the watchdog"))
                r[0] += 1
                if r[0] < r[1]:
                    q = _spawn(args, *r)
                    procs[q.stdout.fileno()] = [q, r, time.monotonic(), False]
    return [results[k] for k in sorted(results)]


def _defects(o: dict) -> list[str]:
    out = [k for k in ("traceback", "hang", "warning", "empty_counted", "half_written", "unclear") if o.get(k)]
    if o.get("rc") not in (0, 1, 2) and not o.get("hang"):
        out.append(f"exit {o.get('rc')}")
    if o.get("peak_mb", 0) > args_global.max_peak_mb:
        out.append("memory")
    return out


def table(outcomes: list[dict], case_files: Counter) -> str:
    rows = ["| target | inputs (files) | converted | clean failures | crashes | hangs | other defects | "
            "max peak MB | max s |", "|---|---|---|---|---|---|---|---|---|"]
    for t in (*TARGETS, "all"):
        sel = [o for o in outcomes if t == "all" or o["target"] == t]
        if not sel:
            continue
        crash = sum(bool(o.get("traceback") or o.get("crash")) for o in sel)
        hang = sum(bool(o.get("hang")) for o in sel)
        other = sum(bool(set(_defects(o)) - {"traceback", "hang"}) for o in sel)
        converted = sum(o.get("rc") == 0 and not _defects(o) for o in sel)
        clean = sum(o.get("rc") in (1, 2) and not _defects(o) for o in sel)
        files = sum(case_files[o["id"]] for o in sel)
        rows.append(f"| {t} | {len(sel):,} ({files:,}) | {converted:,} | {clean:,} | {crash} | {hang} | {other} | "
                    f"{max(o.get('peak_mb', 0) for o in sel):.0f} | {max(o.get('seconds', 0) for o in sel):.1f} |")
    return "\n".join(rows)


args_global = None


def main() -> None:
    global args_global
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds a case may run (else: a hang)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="shared data ('' for none)")
    ap.add_argument("--shared", type=int, default=200, help="seed files drawn from each archive of --data")
    ap.add_argument("--model", default=None, help="model for --prime (default: a tiny untrained Transformer-XL)")
    ap.add_argument("--max-peak-mb", type=float, default=300.0)
    ap.add_argument("--json", default=None, help="write every outcome here")
    ap.add_argument("--keep", default=None, help="write the input files of every defect case under this folder")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--stop", type=int, default=0, help=argparse.SUPPRESS)
    args = args_global = ap.parse_args()
    if args.worker:
        worker(args)
        return
    t0 = time.perf_counter()
    outcomes = run(args)
    wall = time.perf_counter() - t0
    seeds = _seeds(args)
    fuzzer_errors = [o for o in outcomes if o.get("fuzzer_error")]
    outcomes = [o for o in outcomes if not o.get("fuzzer_error")]
    cases, files = {}, Counter()
    for o in outcomes:  # the files of each case (a lakh case is a folder), and the target of unreported ones
        try:
            cases[o["id"]] = make_case(seeds, o["id"], args.seed)
        except Exception:  # noqa: BLE001
            continue
        files[o["id"]] = len(cases[o["id"]]["files"])
        if o["target"] == "?":  # its worker died or was killed before reporting it
            o["target"] = cases[o["id"]]["target"]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f}; {args.cases} cases, seed {args.seed}, {args.workers} workers, "
          f"{len(seeds['nes'])} NES-MDB / {len(seeds['any'])} other MIDI / {len(seeds['tx1'])} TX1 seed files; "
          f"{wall:.0f} s")
    print(table(outcomes, files))
    if fuzzer_errors:
        print(f"{len(fuzzer_errors)} cases not run (the fuzzer failed to make them): {fuzzer_errors[0]['fuzzer_error']}")
    bad = [o for o in outcomes if _defects(o)]
    for o in bad[:20]:
        print(f"defect: case {o['id']} {o['target']}: {', '.join(_defects(o))}: {o.get('message', '')}")
    if args.json:
        Path(args.json).write_text(json.dumps(outcomes) + "\n")
    if args.keep and bad:
        for o in bad:
            d = Path(args.keep) / f"case{o['id']}_{o['target']}"
            d.mkdir(parents=True, exist_ok=True)
            for name, text in cases.get(o["id"], {"files": []})["files"]:
                (d / name).write_bytes(text.encode("latin-1"))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
