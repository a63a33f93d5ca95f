"""Is the network calibrated per kind of event? Teacher-forced on real songs, the probability it gives
each kind (a wait, a melodic note-on, a noise note-on, a note-off), summed over every position, against
how often that kind comes next. A ratio near 1 means the network alone expects as many drum hits as
real songs have: where generated songs have more, the sampler put them there.

Songs are laid out as in the LakhNES protocol (streams of whole songs, segments of 128, memory
``--mem-len``); ``--max-tokens`` scores the first tokens of each stream only.

Usage: python experiments/calibration.py MODEL --data data/nesmdb [--split test] [--mem-len 512]
           [--max-tokens 6000] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from lakhnes.core.vocab import IS_NOTEOFF, IS_NOTEON, IS_WAIT, VOICE_OF
from lakhnes.data.shards import load_split
from lakhnes.evaluation.perplexity import STREAMS, layout_streams
from lakhnes.models import load_model

KINDS = {
    "wait": IS_WAIT,
    "melodic note-on": IS_NOTEON & (VOICE_OF >= 0) & (VOICE_OF < 3),
    "noise note-on": IS_NOTEON & (VOICE_OF == 3),
    "note-off": IS_NOTEOFF,
}


def calibration(model, rows: np.ndarray, lengths: np.ndarray, *, tgt_len: int = 128) -> dict[str, tuple[float, int]]:
    """Per kind: (expected count under the model, actual count) over every scored position."""
    masks = {k: torch.from_numpy(m) for k, m in KINDS.items()}
    expected = dict.fromkeys(KINDS, 0.0)
    actual = dict.fromkeys(KINDS, 0)
    state = model.init_state(rows.shape[0], "cpu")
    x_all = torch.from_numpy(rows.astype(np.int64))
    valid = torch.from_numpy(np.arange(rows.shape[1])[None] < lengths[:, None])
    with torch.no_grad():
        for a in range(0, rows.shape[1] - 1, tgt_len):
            b = min(a + tgt_len, rows.shape[1] - 1)
            logits, state = model(x_all[:, a:b], state)
            p = logits.float().softmax(-1)
            y, ok = x_all[:, a + 1:b + 1], valid[:, a + 1:b + 1]
            for k, m in masks.items():
                expected[k] += float((p[..., m].sum(-1) * ok).sum())
                actual[k] += int((m[y] & ok).sum())
    return {k: (expected[k], actual[k]) for k in KINDS}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--mem-len", type=int, default=512)
    p.add_argument("--max-tokens", type=int, default=0, help="score the first N tokens of each stream (0: all)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    model = load_model(a.model)
    model.config.mem_len = a.mem_len
    rows, lengths = layout_streams(load_split(a.data, a.split).tokens, STREAMS)
    if a.max_tokens:
        rows, lengths = rows[:, : a.max_tokens + 1], np.minimum(lengths, a.max_tokens + 1)
    print(f"{a.model}, {a.split}, {int(lengths.sum()):,} tokens, memory {a.mem_len}")
    print(f"{'kind':18s} {'expected':>10s} {'actual':>8s} {'ratio':>6s}")
    for k, (e, n) in calibration(model, rows, lengths).items():
        print(f"{k:18s} {e:10.0f} {n:8d} {e / max(n, 1):6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
