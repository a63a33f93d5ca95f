"""Synthesizer speed: real-time factor over a folder of NES-MDB MIDI, and peak memory of a long song.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_synth.py /tmp/data/nesmdb_midi/test

Reads every file first (not timed), then times ``lakhnes.synth.render`` (filters on) over all
of them, best of ``--repeat`` passes. Then renders a 10-minute song (the densest file looped)
and reports the peak traced memory (tracemalloc) of that render. With ``--wav-minutes M``, also
runs ``lakhnes synth SONG.mid -o SONG.wav`` in a child process on an M-minute song (the same
file looped) and reports its wall time and peak RSS: the WAV is rendered straight to the file
block by block (``lakhnes.synth.render_wav``).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from lakhnes.core.score import SAMPLE_RATE, VOICES, NesScore
from lakhnes.formats.midi import read_midi, write_midi
from lakhnes.synth import render


def looped(score: NesScore, seconds: float) -> NesScore:
    """The score repeated back to back until it lasts at least ``seconds``."""
    reps = int(np.ceil(seconds * SAMPLE_RATE / score.end))
    out = NesScore(end=score.end * reps, name=f"{score.name}x{reps}")
    for v in VOICES:
        for src, dst, key in ((score.notes, out.notes, ("start", "end")), (score.volume, out.volume, ("time",)),
                              (score.timbre, out.timbre, ("time",))):
            parts = []
            for r in range(reps):
                a = src[v].copy()
                for k in key:
                    a[k] += r * score.end
                parts.append(a)
            dst[v] = np.concatenate(parts)
    return out


def ab(rev: str, scores, audio_s: float, repeat: int) -> None:
    """Best CPU time of the ``render`` at git revision ``rev`` and of today's, passes alternated in this
    process (a fair comparison on a busy machine); checks they give the same samples first."""
    import types

    import lakhnes.synth as today

    src = subprocess.run(["git", "show", f"{rev}:src/lakhnes/synth/__init__.py"], capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.abspath(__file__))).stdout
    old = types.ModuleType("synth_at_rev")
    exec(compile(src, f"synth@{rev}", "exec"), old.__dict__)
    for s in scores[:20]:
        assert np.array_equal(old.render(s), today.render(s))
    best = {rev: float("inf"), "today": float("inf")}
    for _ in range(repeat):
        for name, fn in ((rev, old.render), ("today", today.render)):
            c0 = time.process_time()
            for s in scores:
                fn(s)
            best[name] = min(best[name], time.process_time() - c0)
    print("A/B by CPU time: " + ", ".join(f"{k} {v:.2f} s ({audio_s / v:.0f}x)" for k, v in best.items()))


def peak_rss_mib(child: subprocess.Popen) -> float:
    """The child's peak RSS (MiB), read from /proc while it runs (VmHWM: the new program's own peak;
    ``ru_maxrss`` would also count the parent's pages the child held between fork and exec)."""
    peak = 0
    while child.poll() is None:
        try:
            with open(f"/proc/{child.pid}/status") as fh:
                peak = max([peak] + [int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM")])
        except OSError:
            pass
        time.sleep(0.02)
    return peak / 1024 if peak else resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", help="folder of NES-MDB .mid files (e.g. the test split)")
    ap.add_argument("--repeat", type=int, default=2, help="timed passes (best is kept)")
    ap.add_argument("--long-seconds", type=float, default=600.0)
    ap.add_argument("--wav-minutes", type=float, default=0.0, help="also time `lakhnes synth` on a song this long")
    ap.add_argument("--ab", metavar="REV", default=None,
                    help="also time the `render` of git revision REV against today's, passes alternated (CPU time)")
    args = ap.parse_args()
    files = sorted(Path(args.folder).rglob("*.mid"))
    scores = [read_midi(f) for f in files]
    audio_s = sum(s.end for s in scores) / SAMPLE_RATE
    best = cpu = float("inf")
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        for s in scores:
            render(s)
        best = min(best, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"{len(scores)} songs, {audio_s / 60:.1f} min of audio rendered in {best:.2f} s "
          f"(best of {args.repeat}; {cpu:.2f} s CPU): {audio_s / best:.0f}x real time "
          f"({audio_s / cpu:.0f}x by CPU time)")
    song = looped(max(scores, key=lambda s: s.num_notes / max(s.end, 1)), args.long_seconds)
    render(song)  # warm
    t0 = time.perf_counter()
    tracemalloc.start()
    render(song)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{song.seconds / 60:.1f}-minute song ({song.num_notes} notes): peak memory {peak / 2**20:.0f} MiB "
          f"({peak / song.end:.0f} bytes/sample), {time.perf_counter() - t0:.2f} s with tracing")
    if args.ab:
        ab(args.ab, scores, audio_s, args.repeat)
    if args.wav_minutes > 0:
        dense = max(scores, key=lambda s: s.num_notes / max(s.end, 1))
        song = looped(dense, args.wav_minutes * 60).slice(0, round(args.wav_minutes * 60 * SAMPLE_RATE))
        with tempfile.TemporaryDirectory() as tmp:
            write_midi(song, f"{tmp}/song.mid")
            t0 = time.perf_counter()
            child = subprocess.Popen([sys.executable, "-m", "lakhnes", "synth", f"{tmp}/song.mid", "-o",
                                      f"{tmp}/song.wav"], stderr=subprocess.DEVNULL)
            rss = peak_rss_mib(child)
            wall = time.perf_counter() - t0
            assert child.returncode == 0
            size = os.path.getsize(f"{tmp}/song.wav")
        print(f"lakhnes synth, {song.seconds / 60:.1f}-minute song ({song.num_notes} notes) -> {size / 1e6:.0f} MB WAV: "
              f"{wall:.2f} s wall (with start-up), peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
