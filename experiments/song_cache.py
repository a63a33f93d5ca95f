"""How much an in-song cache (the song's own earlier continuations of its recent tokens) adds to the
Transformer-XL's predictions: per-target model log-probabilities dumped once (the perplexity
protocol: 10 streams, segments of 128, memory 896), then cache mixtures fitted on valid, scored on test.

    python experiments/song_cache.py dump --split valid --out runs/song_cache/valid.npz
    python experiments/song_cache.py fit runs/song_cache/valid.npz runs/song_cache/test.npz
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

ORDERS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
RESET = False  # --per-song: forget at each <S>


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


def cache_features(row: np.ndarray, n: int, orders=ORDERS):
    """For each target t (1..n-1): the longest order k whose context row[t-k:t] occurred earlier in the
    row, that context's count, and the cache probability of the true next token at that order."""
    tables = [dict() for _ in orders]
    order = np.zeros(n - 1, np.int16)
    count = np.zeros(n - 1, np.int32)
    pc = np.zeros(n - 1, np.float64)
    distinct = np.zeros(n - 1, np.int16)
    seq = row[:n].tolist()
    start = 0
    for t in range(1, n):
        y = seq[t]
        if RESET and seq[t - 1] == 0:
            tables = [dict() for _ in orders]
            start = t
        for oi in range(len(orders) - 1, -1, -1):
            k = orders[oi]
            if k > t - start:
                continue
            d = tables[oi].get(hash(tuple(seq[t - k : t])))
            if d is not None:
                tot = d[-1]
                order[t - 1], count[t - 1] = k, tot
                pc[t - 1] = d.get(y, 0) / tot
                distinct[t - 1] = len(d) - 1
                break
        for oi, k in enumerate(orders):  # record this continuation
            if k > t - start:
                break
            key = hash(tuple(seq[t - k : t]))
            d = tables[oi].get(key)
            if d is None:
                d = tables[oi][key] = {-1: 0}
            d[y] = d.get(y, 0) + 1
            d[-1] += 1
    return order, count, pc, distinct


def features(path):
    z = np.load(path)
    rows, lengths, logp = z["rows"], z["lengths"], z["logp"]
    f = {"order": [], "count": [], "pc": [], "distinct": [], "pm": []}
    for s in range(len(lengths)):
        o, c, p, d = cache_features(rows[s], int(lengths[s]))
        f["order"].append(o)
        f["count"].append(c)
        f["pc"].append(p)
        f["distinct"].append(d)
        f["pm"].append(np.exp(logp[s, : lengths[s] - 1].astype(np.float64)))
    return {k: np.concatenate(v) for k, v in f.items()}


def bucket(f):
    o = np.searchsorted(ORDERS, f["order"]) + 1  # 0 = no match
    o[f["order"] == 0] = 0
    det = (f["distinct"] <= 1).astype(int)
    cnt = np.minimum(f["count"], 3)
    return o * 8 + det * 4 + cnt


def fit(args):
    fv, ft = features(args.valid), features(args.test)
    bv, bt = bucket(fv), bucket(ft)
    lam = {}
    for b in np.unique(bv):
        m = bv == b
        pm, pc = fv["pm"][m], fv["pc"][m]
        x = 0.1
        for _ in range(200):  # EM for a two-component mixture weight
            r = x * pc / (x * pc + (1 - x) * pm)
            x = float(np.clip(r.mean(), 1e-4, 0.999))
        lam[int(b)] = x
    for name, f, b in (("valid", fv, bv), ("test", ft, bt)):
        x = np.array([lam.get(int(k), 0.0) for k in b])
        mix = x * f["pc"] + (1 - x) * f["pm"]
        print(f"{name}: model PPL {math.exp(-np.log(f['pm']).mean()):.4f}  with song cache "
              f"{math.exp(-np.log(mix).mean()):.4f}  (targets {len(mix)}, matched order>=8: "
              f"{(f['order'] >= 8).mean():.3f}, >=32: {(f['order'] >= 32).mean():.3f})")
    for b in sorted(lam):
        n = int((bv == b).sum())
        if n > 2000:
            print(f"bucket order={ORDERS[b // 8 - 1] if b >= 8 else 0} det={(b % 8) // 4} cnt={b % 4}: "
                  f"lambda {lam[b]:.3f}  n {n}")


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
    f.add_argument("--per-song", action="store_true")
    a = ap.parse_args()
    global RESET
    RESET = getattr(a, "per_song", False)
    dump(a) if a.cmd == "dump" else fit(a)


if __name__ == "__main__":
    main()
