"""Bootstrap confidence intervals over test queries, and paired bootstrap differences between routers.

A statistic is a function of per-query values resampled with replacement. Every function here draws
the same ``n_boot`` resamples for the same ``(n, n_boot, seed)``, so two routers evaluated with one
seed see the same resampled query sets: that is the paired bootstrap, which compares routers on the
same queries instead of letting two independent noises add up. Intervals are percentile intervals.

Statistics take an index array of shape (B, n) (B resamples at a time) and return B values; the
helpers ``mean_of`` and ``gap_closed_of`` build the ones used by the evaluator. NaN per-query values
(queries without a label for the routed model) are left out of each resample's mean.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from routertrain.evaluation.metrics import nanmean_rows

N_BOOT = 1000
CHUNK = 100  # resamples drawn and evaluated at a time (bounds memory: CHUNK x n indices)

Statistic = Callable[[np.ndarray], np.ndarray]


def resamples(n: int, n_boot: int = N_BOOT, seed: int = 0):
    """Yield (B, n) index arrays, ``n_boot`` rows in all, the same for the same arguments."""
    if n < 1:
        raise ValueError("the bootstrap needs at least one query")
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, CHUNK):
        yield rng.integers(0, n, size=(min(CHUNK, n_boot - start), n), dtype=np.int64)


def distribution(statistic: Statistic, n: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """The statistic on each of the ``n_boot`` resamples."""
    return np.concatenate([np.asarray(statistic(idx), dtype=np.float64) for idx in resamples(n, n_boot, seed)])


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def ci(statistic: Statistic, n: int, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95) -> dict:
    """``{'value', 'low', 'high'}``: the statistic on all queries and its bootstrap interval."""
    value = float(np.asarray(statistic(np.arange(n)[None, :]))[0])
    low, high = interval(distribution(statistic, n, n_boot, seed), level)
    return {"value": value, "low": low, "high": high}


def paired_difference(stat_a: Statistic, stat_b: Statistic, n: int, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95) -> dict:
    """A - B on the same resamples: ``{'value', 'low', 'high', 'p_value'}``.

    ``p_value`` is the two-sided bootstrap p-value of "no difference": twice the share of resamples
    on the less frequent side of 0, at most 1.
    """
    full = np.arange(n)[None, :]
    value = float(np.asarray(stat_a(full))[0] - np.asarray(stat_b(full))[0])
    diffs = distribution(lambda idx: np.asarray(stat_a(idx)) - np.asarray(stat_b(idx)), n, n_boot, seed)
    diffs = diffs[np.isfinite(diffs)]
    low, high = interval(diffs, level)
    p = min(1.0, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())) if diffs.size else float("nan")
    return {"value": value, "low": low, "high": high, "p_value": float(p)}


def mean_of(values: np.ndarray) -> Statistic:
    """The NaN-ignoring mean of per-query ``values`` over each resample."""
    values = np.asarray(values, dtype=np.float64)
    return lambda idx: nanmean_rows(values[idx], axis=1)


def gap_closed_of(router: np.ndarray, single: np.ndarray, oracle: np.ndarray) -> Statistic:
    """(router - best single) / (oracle - best single) of per-query values, per resample."""
    means = [mean_of(v) for v in (router, single, oracle)]

    def statistic(idx: np.ndarray) -> np.ndarray:
        r, s, o = (m(idx) for m in means)
        span = o - s
        return np.divide(r - s, span, out=np.full(len(span), np.nan), where=span > 0)

    return statistic
