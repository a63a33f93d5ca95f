"""What still tells generated songs from real NES-MDB test songs (of at least 20 s, both cut to 30 s), four
probes beside ``benchmarks/bench_realism.py``:

- ``greedy DIR``: the classifier two-sample test with the features left out one group at a time, greedily
  (each step leaves out the group whose loss lowers the accuracy most; a histogram is one group);
- ``keys DIR``: how well the songs keep to one major scale (whole song, 5-s windows, each voice alone) and
  how many pitch classes each melodic voice uses (entropy, bits), real and generated;
- ``voices DIR``: per voice, the share of the song it sounds, songs where it never plays, note and rest
  lengths, and how often a note follows the last one without a rest;
- ``tails DIR``: the share of songs in the tails of the pulse and repetition features (no 8-interval phrase
  repeated, under 0.3 or over 0.95 of the IOIs on the frame grid, 25 distinct IOIs or more);
- ``calibration MODEL``: teacher-forced on the first N test songs (``--songs``), the network's summed
  probability of each voice's NOTEOFF against the real count, and the share of a sounding voice's note-on
  probability that goes to the pitch it already sounds (a same-pitch re-attack).

    python experiments/song_tells.py greedy runs/arms/NAME [--steps 8]
    python experiments/song_tells.py keys runs/arms/NAME
    python experiments/song_tells.py voices runs/arms/NAME
    python experiments/song_tells.py tails runs/arms/NAME
    python experiments/song_tells.py calibration src/lakhnes/assets/default [--data data/nesmdb --songs 30]

``--real``: the NES-MDB MIDI tarball or folder (default: ``bench_realism.py``'s).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_realism as B  # noqa: E402

MELODIC, SR = B.MELODIC, B.SR


def _songs(folder: str, real_src: str) -> tuple[list, list]:
    sk = B.Skips()
    real = [B.crop(s, 30.0) for s in B.read_real(real_src, "test", sk, "real") if B.song_seconds(s) >= 20]
    gen = [B.crop(s, 30.0) for s in B.load_folder(Path(folder), sk)]
    return real, gen


def _header(*columns: str) -> None:
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))


def greedy(folder: str, real_src: str, steps: int) -> None:
    real, gen = _songs(folder, real_src)
    Xr, names = B.feature_matrix([B.song_features(x, None) for x in real])
    Xg, _ = B.feature_matrix([B.song_features(x, None) for x in gen])

    def acc(cols):
        return B.two_sample_test(Xr[:, cols], Xg[:, cols], [names[c] for c in cols], seed=0, repeats=3)["accuracy"]

    groups: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        groups.setdefault(n.split(":")[0], []).append(i)
    cols = list(range(len(names)))
    print(f"all {len(names)} features: {acc(cols):.3f} ({len(gen)} generated, {len(real)} real songs)")
    for _ in range(min(steps, len(groups) - 1)):
        scores = {g: acc([c for c in cols if c not in ix]) for g, ix in groups.items()}
        g = min(scores, key=scores.get)
        gone = groups.pop(g)
        cols = [c for c in cols if c not in gone]
        print(f"without {g:24s} {scores[g]:.3f}")


def _pcs(p: np.ndarray) -> np.ndarray:
    return np.bincount(p % 12, minlength=12).astype(float)


def _scale_share(p: np.ndarray) -> float:
    return B.scale_share(_pcs(p)) if len(p) else np.nan


def keys(folder: str, real_src: str) -> None:
    real, gen = _songs(folder, real_src)
    _header("songs", "scale share: whole song", "in 5-s windows", "each voice alone (8+ notes)",
            "pitch-class entropy P1 / P2 / TR")
    for name, songs in (("real", real), ("generated", gen)):
        whole, win, alone, ent = [], [], [], {v: [] for v in MELODIC}
        for s in songs:
            parts = [s.voice(v) for v in MELODIC]
            p = np.concatenate([x[2] for x in parts])
            t = np.concatenate([x[0] for x in parts])
            whole.append(_scale_share(p))
            w = [_scale_share(p[(t >= a * SR) & (t < (a + 5) * SR)]) for a in range(0, 30, 5)]
            win.append(np.nanmean(w) if not np.all(np.isnan(w)) else np.nan)
            own = [_scale_share(x[2]) for x in parts if len(x[2]) >= 8]
            alone.append(np.mean(own) if own else np.nan)
            for v, x in zip(MELODIC, parts, strict=True):
                if len(x[2]) >= 5:
                    ent[v].append(B._entropy(_pcs(x[2])))
        e = " / ".join(f"{np.mean(ent[v]):.2f}" for v in MELODIC)
        print(f"| {name} | {np.nanmean(whole):.3f} | {np.nanmean(win):.3f} | {np.nanmean(alone):.3f} | {e} |")


def voices(folder: str, real_src: str) -> None:
    real, gen = _songs(folder, real_src)
    _header("songs", "voice", "sounding (mean)", "songs without it", "note length, s (median / p90)",
            "rest, s (median / p90)", "notes without a rest before")
    for name, songs in (("real", real), ("generated", gen)):
        for v in ("p1", "p2", "tr", "no"):
            occ, lens, gaps = [], [], []
            for s in songs:
                st, en, _ = s.voice(v)
                occ.append(float((en - st).sum()) / (B.song_seconds(s) * SR))
                lens += ((en - st) / SR).tolist()
                gaps += ((st[1:] - en[:-1]) / SR).tolist()
            occ, lens, gaps = np.array(occ), np.array(lens), np.array(gaps)
            print(f"| {name} | {v.upper()} | {occ.mean():.3f} | {(occ == 0).mean():.2f} | "
                  f"{np.median(lens):.3f} / {np.quantile(lens, 0.9):.3f} | "
                  f"{np.median(gaps):.3f} / {np.quantile(gaps, 0.9):.3f} | {(gaps <= 0).mean():.2f} |")


def tails(folder: str, real_src: str) -> None:
    real, gen = _songs(folder, real_src)
    _header("songs", "repetition share under 0.05", "frame grid under 0.3", "frame grid over 0.95", "25+ distinct IOIs")
    for name, songs in (("real", real), ("generated", gen)):
        f = [B.song_features(x, None)["scalars"] for x in songs]
        rep, grid, iois = (np.array([x[k] for x in f]) for k in ("rep8", "grid_share", "distinct_iois"))
        print(f"| {name} | {(rep < 0.05).mean():.3f} | {(grid < 0.3).mean():.3f} | {(grid > 0.95).mean():.3f} | "
              f"{(iois >= 25).mean():.3f} |")


def calibration(model_dir: str, data: str, n_songs: int) -> None:
    import torch

    from lakhnes.core import vocab as V
    from lakhnes.models.files import load_model

    torch.set_num_threads(1)
    model = load_model(model_dir)
    model.eval()
    toks = np.load(Path(data) / "test.npy")
    offs = np.load(Path(data) / "test.offsets.npy")
    names = ("P1", "P2", "TR", "NO")
    off_id = [V.VOICE_OFF[v] for v in names]
    on_ids = [V.noteon_ids(v) for v in names]
    exp_off, act_off, same, legato, act_legato = (np.zeros(4) for _ in range(5))
    for k in range(min(n_songs, len(offs) - 1)):
        seq = toks[offs[k]:offs[k + 1]]
        x = torch.as_tensor(seq[:-1].astype(np.int64))[None]
        state, parts = None, []
        with torch.no_grad():
            for a in range(0, x.shape[1], 512):
                logits, state = model(x[:, a:a + 512], state)
                parts.append(torch.softmax(logits[0].float(), -1).numpy())
        P = np.concatenate(parts)  # P[t]: the odds of seq[t + 1]
        x_ids, nxt = seq[:-1].astype(np.int64), seq[1:].astype(np.int64)
        steps = np.arange(len(x_ids))
        for u in range(4):
            # the voice's last event up to each step (forward-filled): its note-on id, or -1 once it ended
            last = np.maximum.accumulate(np.where(V.VOICE_OF[x_ids] == u, steps, -1))
            held = np.where(last >= 0, x_ids[np.maximum(last, 0)], -1)
            on = (last >= 0) & (V.PITCH_OF[held] > 0)
            rows = steps[on]
            exp_off[u] += P[rows, off_id[u]].sum()
            act_off[u] += (nxt[on] == off_id[u]).sum()
            same[u] += P[rows, held[on]].sum()
            legato[u] += P[rows][:, on_ids[u]].sum()
            act_legato[u] += ((V.VOICE_OF[nxt[on]] == u) & (V.PITCH_OF[nxt[on]] > 0)).sum()
    print(f"{model_dir}, teacher-forced on {min(n_songs, len(offs) - 1)} test songs")
    _header("voice", "NOTEOFF: summed probability / real count", "note-on while sounding: summed / real",
            "of it, the sounding pitch")
    for u, v in enumerate(names):
        print(f"| {v} | {exp_off[u]:.0f} / {act_off[u]:.0f} ({exp_off[u] / max(act_off[u], 1):.3f}) | "
              f"{legato[u]:.0f} / {act_legato[u]:.0f} | {same[u] / max(legato[u], 1e-9):.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("probe", choices=("greedy", "keys", "voices", "tails", "calibration"))
    ap.add_argument("target", help="folder of generated songs (calibration: a model folder)")
    ap.add_argument("--steps", type=int, default=8, help="greedy: groups to leave out")
    ap.add_argument("--data", default="data/nesmdb", help="calibration: prepared NES-MDB")
    ap.add_argument("--songs", type=int, default=30, help="calibration: test songs")
    ap.add_argument("--real", default=B.DEFAULT_REAL, help="NES-MDB MIDI tarball or folder (real songs)")
    a = ap.parse_args()
    if a.probe == "calibration":
        calibration(a.target, a.data, a.songs)
    elif a.probe == "greedy":
        greedy(a.target, a.real, a.steps)
    else:
        {"keys": keys, "voices": voices, "tails": tails}[a.probe](a.target, a.real)


if __name__ == "__main__":
    main()
