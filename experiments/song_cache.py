"""How much an in-song cache (the song's own earlier continuations of its recent tokens) adds to the
Transformer-XL's predictions: per-target model log-probabilities dumped once (the perplexity
protocol: 10 streams, segments of 128, memory 896), then the song cache (lakhnes.models.song_cache)
fitted on valid and scored on test.

    python experiments/song_cache.py dump --split valid --out runs/song_cache/valid.npz
    python experiments/song_cache.py fit runs/song_cache/valid.npz runs/song_cache/test.npz
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from lakhnes.models.song_cache import N_BUCKETS, ORDERS, fit_lambdas, stream_scores


def dump(args):
    import torch
    import torch.nn.functional as F

    from lakhnes.data.shards import load_split
    from lakhnes.evaluation.perplexity import layout_streams
    from lakhnes.models import load_model

    torch.set_num_threads(args.threads)
    tokens = np.asarray(load_split(args.data, args.split).tokens)
    rows, lengths = layout_streams(tokens, 10)
    model = load_model(args.model, device="cpu").eval()
    model.config.mem_len = args.mem
    x = torch.from_numpy(rows)
    out = np.zeros((rows.shape[0], rows.shape[1] - 1), np.float32)
    state = model.init_state(rows.shape[0], "cpu")
    t0 = time.time()
    with torch.inference_mode():
        for i in range(0, rows.shape[1] - 1, 128):
            j = min(i + 128, rows.shape[1] - 1)
            logits, state = model(x[:, i:j], state)
            lp = F.log_softmax(logits.double(), -1).gather(-1, x[:, i + 1 : j + 1, None])[..., 0]
            out[:, i:j] = lp.float().numpy()
            if i % (128 * 50) == 0:
                print(f"{j}/{rows.shape[1]} {time.time() - t0:.0f}s", flush=True)
    np.savez(args.out, rows=rows, lengths=lengths, logp=out)
    nll = -sum(out[s, : lengths[s] - 1].sum() for s in range(len(lengths))) / (lengths.sum() - len(lengths))
    print(f"model PPL {math.exp(nll):.4f}")


def scores(path):
    """Buckets, cache and model probabilities of every target of a dump (the product's cache)."""
    z = np.load(path)
    rows, lengths, logp = z["rows"], z["lengths"], z["logp"]
    b, pc, pm = [], [], []
    for s in range(len(lengths)):
        n = int(lengths[s])
        bs, ps = stream_scores(rows[s, :n])
        b.append(bs)
        pc.append(ps)
        pm.append(np.exp(logp[s, : n - 1].astype(np.float64)))
    return np.concatenate(b), np.concatenate(pc), np.concatenate(pm)


def fit(args):
    bv, cv, mv = scores(args.valid)
    bt, ct, mt = scores(args.test)
    lam = fit_lambdas(bv, mv, cv, prior=args.prior)
    for name, b, c, m in (("valid", bv, cv, mv), ("test", bt, ct, mt)):
        x = lam[b]
        print(f"{name}: model PPL {math.exp(-np.log(m).mean()):.4f}  with song cache "
              f"{math.exp(-np.log(x * c + (1 - x) * m).mean()):.4f}  (targets {len(m)}, a context of 8+ "
              f"tokens seen before: {(b >= 6 * 8).mean():.3f})")
    for k in np.flatnonzero(np.bincount(bv, minlength=N_BUCKETS) > 2000):
        o, rest = divmod(int(k), 8)
        print(f"bucket order={ORDERS[o - 1] if o else 0} one-way={rest // 4} count={rest % 4}: lambda {lam[k]:.3f}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--model", default="default")
    d.add_argument("--data", default="data/nesmdb")
    d.add_argument("--split", default="valid")
    d.add_argument("--mem", type=int, default=896)
    d.add_argument("--threads", type=int, default=1)
    d.add_argument("--out", required=True)
    f = sub.add_parser("fit")
    f.add_argument("valid")
    f.add_argument("test")
    f.add_argument("--prior", type=float, default=20.0, help="pseudo-targets per bucket (as lakhnes eval)")
    a = ap.parse_args()
    dump(a) if a.cmd == "dump" else fit(a)


if __name__ == "__main__":
    main()
