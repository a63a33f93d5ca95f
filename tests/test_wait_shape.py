"""The waits reshaped among themselves: a temperature and a nucleus of their own, the tempo kept."""

import numpy as np
import pytest

from lakhnes.core import vocab as V
from lakhnes.decoding import sampler as S
from lakhnes.errors import InvalidInputError

WAITS = np.flatnonzero(V.IS_WAIT)


def _logprobs(rng, n=6):
    """Rows of log-probabilities whose waits, like a model's, spread around one to four frames."""
    x = rng.normal(size=(n, V.VOCAB_SIZE)) * 2
    d = V.WAIT_OF[WAITS]
    for row in x:
        row[WAITS] = -1.5 * np.log(d / rng.choice([735, 1470, 2940])) ** 2 + rng.normal(size=len(WAITS)) * 0.5
    x[rng.random(x.shape) < 0.3] = -np.inf
    return x - S._logsumexp(x)


@pytest.mark.parametrize("factor,top_p", [(0.95 / 0.7, 0.8), (2.0, None), (1.0, 0.5)])
def test_reshaped_waits_keep_their_probability_and_the_mean_wait(factor, top_p):
    x = _logprobs(np.random.default_rng(0))
    y = S._rescale_waits(x.copy(), factor, top_p=top_p)
    d = V.WAIT_OF[WAITS]
    for a, b in zip(x, y, strict=True):
        pa, pb = np.exp(a[WAITS]), np.exp(b[WAITS])
        assert pb.sum() == pytest.approx(pa.sum(), rel=1e-9)  # a wait as likely as before
        assert (pb * d).sum() / pb.sum() == pytest.approx((pa * d).sum() / pa.sum(), rel=1e-3)  # the tempo
        assert np.allclose(np.delete(a, WAITS), np.delete(b, WAITS), rtol=0, atol=1e-12)  # the other ids: as before
        if top_p is not None:  # the tail is gone: fewer waits left, the likeliest (sharpened) among them
            q = np.exp(a[WAITS] * factor - S._logsumexp(a[WAITS][None] * factor)[0, 0])
            kept = pb > 0
            assert kept.sum() < (pa > 0).sum()
            assert q[kept].min() >= q[~kept & (pa > 0)].max()
            assert q[kept].sum() - q[kept].min() < top_p <= q[kept].sum() + 1e-12


def test_the_one_row_path_picks_what_the_general_path_picks():
    rng = np.random.default_rng(1)
    for case in range(300):
        logits = (rng.normal(size=(1, V.VOCAB_SIZE)) * 4).astype(np.float32)
        allowed = rng.random((1, V.VOCAB_SIZE)) < rng.uniform(0.05, 0.9)
        allowed[0, rng.integers(V.VOCAB_SIZE)] = True
        kw = dict(temperature=0.95, top_k=[32, 0, 5][case % 3], wait_temperature=0.7, wait_top_p=[0.8, None, 0.5][case % 3])
        fast = S.pick(logits, allowed, rng=np.random.default_rng(case), **kw)
        general = S.pick(logits.tolist(), allowed.tolist(), rng=np.random.default_rng(case), **kw)  # not an array
        assert fast.tolist() == general.tolist()


def test_sampled_waits_keep_the_pace_and_drop_the_rare_ones():
    w = [V.TOKEN_TO_ID[f"WT_{n}"] for n in (740, 1500, 3000, 6000)]
    logits = np.full((1, V.VOCAB_SIZE), -np.inf)
    logits[0, w] = np.log([0.5, 0.3, 0.17, 0.03])
    allowed = np.isfinite(logits)
    rng = np.random.default_rng(2)
    ids = np.array([S.pick(logits, allowed, temperature=1.0, top_k=0, rng=rng, wait_temperature=0.5,
                           wait_top_p=0.9)[0] for _ in range(20000)])
    length = V.WAIT_OF[ids]
    assert not (ids == w[3]).any()  # the rarest wait is cut (the sharpened head holds 0.9 without it)
    assert length.mean() == pytest.approx(0.5 * 740 + 0.3 * 1500 + 0.17 * 3000 + 0.03 * 6000, rel=0.03)


def test_bad_wait_top_p_is_refused():
    for bad in (0, -0.1, 1.5, float("nan")):
        with pytest.raises(InvalidInputError, match="wait top-p"):
            S.check_sampling(0.95, 32, None, 1, 0.7, bad)
