"""Probe: does a per-voice, transposition-invariant pitch cache add to the song cache?

``collect``: score a split with the network (the evaluation's protocol: 10 streams, segments of 128,
memory M) and keep, per target, the network's probability of the target and its log-mass on each
melodic voice's note-ons. ``fit``: offline, the song cache's mixture (the model's table) and then
the voice cache, ``p2(y) = (1 - mu) p1(y) + mu P1(F) c(y)`` on note-ons of family F; mu fitted on
valid per bucket, scored on test.

Usage: python experiments/voice_cache_probe.py collect MODEL SPLIT MEM OUT.npz
       python experiments/voice_cache_probe.py fit MODEL VALID.npz TEST.npz
"""

from __future__ import annotations

import math
import sys

import numpy as np

from lakhnes.core import vocab as V
from lakhnes.evaluation.perplexity import STREAMS, TGT_LEN, layout_streams
from lakhnes.models import song_cache as SC
from lakhnes.models import voice_cache as VC

FAMS = [V.noteon_ids(v) for v in V.VOICES[:3]]


def collect(model_path, split, mem, out):
    import torch

    from lakhnes.data.shards import load_split
    from lakhnes.models import load_model
    from lakhnes.progress import progress_bar

    torch.set_num_threads(1)
    tokens = np.asarray(load_split("data/nesmdb", split).tokens)
    rows, lengths = layout_streams(tokens, STREAMS)
    model = load_model(model_path, device="cpu").eval()
    model.config.mem_len = int(mem)
    x_all = torch.from_numpy(rows)
    lp_t = np.zeros((STREAMS, rows.shape[1] - 1))
    lp_f = np.zeros((STREAMS, rows.shape[1] - 1, 3))
    state = model.init_state(STREAMS, "cpu")
    with torch.inference_mode():
        for i in progress_bar(range(0, rows.shape[1] - 1, TGT_LEN), desc="collect", unit="seg"):
            j = min(i + TGT_LEN, rows.shape[1] - 1)
            logits, state = model(x_all[:, i:j], state)
            lp = torch.log_softmax(logits.double(), -1)
            lp_t[:, i:j] = lp.gather(-1, x_all[:, i + 1 : j + 1, None])[..., 0].numpy()
            for f, ids in enumerate(FAMS):
                lp_f[:, i:j, f] = torch.logsumexp(lp[..., torch.from_numpy(ids)], -1).numpy()
    np.savez(out, rows=rows, lengths=lengths, lp_t=lp_t, lp_f=lp_f)


def arrays(npz, lam):
    """Per target of the streams: p1 (the song-cache mixture), P1 of the target's melodic family,
    the voice-cache bucket and c(target)."""
    z = np.load(npz)
    rows, lengths, lp_t, lp_f = z["rows"], z["lengths"], z["lp_t"], z["lp_f"]
    out = {k: [] for k in ("p1", "pf", "b", "c", "tok")}
    for s in range(len(rows)):
        ids = rows[s, : lengths[s]].tolist()
        h, vh = SC.SongHistory(), VC.VoiceHistory()
        for t in range(1, len(ids)):
            h.push(ids[t - 1])
            vh.push(ids[t - 1])
            y = ids[t]
            pm = math.exp(lp_t[s, t - 1])
            k, d = h.lookup()
            la = lam[k] if d is not None else 0.0
            pc = d.get(y, 0) / d[-1] if d is not None else 0.0
            p1 = (1 - la) * pm + la * pc
            f = int(V.VOICE_OF[y]) if V.IS_NOTEON[y] else -1
            b, c, pf = 0, 0.0, 0.0
            if 0 <= f < 3:
                pmf = math.exp(lp_f[s, t - 1, f])
                pcf = sum(n for i, n in d.items() if i >= 0 and V.VOICE_OF[i] == f and V.IS_NOTEON[i]) / d[-1] \
                    if d is not None else 0.0
                pf = (1 - la) * pmf + la * pcf
                b, dist = vh.predict(f)
                c = dist.get(y, 0.0) if dist else 0.0
            for key, v in (("p1", p1), ("pf", pf), ("b", b), ("c", c), ("tok", y)):
                out[key].append(v)
    return {k: np.asarray(v) for k, v in out.items()}


def fit(model_path, valid, test):
    lam = SC.read_lambdas(model_path, mem_len=896)
    va, te = arrays(valid, lam), arrays(test, lam)
    mu = SC.fit_lambdas(va["b"], va["p1"], va["pf"] * va["c"])
    for name, a in (("valid", va), ("test", te)):
        p2 = (1 - mu[a["b"]]) * a["p1"] + mu[a["b"]] * a["pf"] * a["c"]
        on = a["b"] > 0
        print(f"{name}: song cache PPL {math.exp(-np.log(a['p1']).mean()):.4f} -> with the voice cache "
              f"{math.exp(-np.log(p2).mean()):.4f}; {on.mean():.3f} of targets matched; note-on NLL "
              f"{-np.log(a['p1'][on]).mean():.3f} -> {-np.log(p2[on]).mean():.3f}")
    print("mu (bucket: value):", {int(b): round(float(mu[b]), 3) for b in np.nonzero(mu)[0]})
    return mu


if __name__ == "__main__":
    if sys.argv[1] == "collect":
        collect(*sys.argv[2:4], int(sys.argv[4]), sys.argv[5])
    else:
        fit(*sys.argv[2:5])
