"""Bootstrap confidence intervals over test queries, and paired bootstrap differences between routers.

A statistic is a function of per-query values resampled with replacement. Every function here draws
the same ``n_boot`` resamples for the same ``(n, n_boot, seed)``, so two routers evaluated with one
seed see the same resampled query sets: that is the paired bootstrap, which compares routers on the
same queries instead of letting two independent noises add up. Intervals are percentile intervals.

Statistics take an index array of shape (B, n) (B resamples at a time) and return B values; the
helpers ``mean_of`` and ``gap_closed_of`` build the ones used by the evaluator. NaN per-query values
(queries without a label for the routed model) are left out of each resample's mean.

Macro averages (each task weighs the same) resample within each task: ``strata`` gives each query's
task, and a resample replaces every query by a random query of the same task, so each task keeps
its count and column j of a resample always belongs to query j's task. ``mean_of(values, groups)``
then averages per task within each resample, and the identity resample gives the macro average of
the full split.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from routertrain.evaluation.decision import nanmean_rows

N_BOOT = 1000
CHUNK = 100  # resamples drawn at a time, at most
CHUNK_INDICES = 10_000_000  # and at most this many indices per chunk (80 MB): the chunk shrinks past 100k queries
EVAL_INDICES = 1_000_000  # a statistic sees this many indices at a time (8 MB), at most: its temporaries stay in the CPU's caches

Statistic = Callable[[np.ndarray], np.ndarray]


def resamples(n: int, n_boot: int = N_BOOT, seed: int = 0, strata=None):
    """Yield (B, n) index arrays, ``n_boot`` rows in all, the same for the same arguments; with
    ``strata`` (one label per query), each query is replaced by a query of its own stratum.

    B is ``CHUNK``, or fewer where ``CHUNK`` x n would pass ``CHUNK_INDICES``, so memory stays bounded
    at any n. Without strata the rows do not depend on B (one stream of draws, row after row)."""
    if n < 1:
        raise ValueError("the bootstrap needs at least one query")
    rng = np.random.default_rng(seed)
    members = None if strata is None else [np.flatnonzero(np.asarray(strata) == s) for s in np.unique(strata)]
    chunk = max(1, min(CHUNK, CHUNK_INDICES // n))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        if members is None:
            yield rng.integers(0, n, size=(b, n), dtype=np.int64)
            continue
        idx = np.empty((b, n), dtype=np.int64)
        for rows in members:
            idx[:, rows] = rows[rng.integers(0, len(rows), size=(b, len(rows)))]
        yield idx


def distribution(statistic: Statistic, n: int, n_boot: int = N_BOOT, seed: int = 0, strata=None) -> np.ndarray:
    """The statistic on each of the ``n_boot`` resamples, evaluated ``EVAL_INDICES`` indices at a time (a
    statistic is row by row, so the values do not depend on it; the draws stay those of ``resamples``)."""
    rows = max(1, EVAL_INDICES // n)
    return np.concatenate([np.asarray(statistic(idx[i : i + rows]), dtype=np.float64)
                           for idx in resamples(n, n_boot, seed, strata) for i in range(0, len(idx), rows)])


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def ci(statistic: Statistic, n: int, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95, strata=None) -> dict:
    """``{'value', 'low', 'high'}``: the statistic on all queries and its bootstrap interval."""
    value = float(np.asarray(statistic(np.arange(n)[None, :]))[0])
    low, high = interval(distribution(statistic, n, n_boot, seed, strata), level)
    return {"value": value, "low": low, "high": high}


def paired_difference(stat_a: Statistic, stat_b: Statistic, n: int, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95, strata=None) -> dict:
    """A - B on the same resamples: ``{'value', 'low', 'high', 'p_value'}``.

    ``p_value`` is the two-sided bootstrap p-value of "no difference": twice the share of resamples
    on the less frequent side of 0, at most 1.
    """
    full = np.arange(n)[None, :]
    value = float(np.asarray(stat_a(full))[0] - np.asarray(stat_b(full))[0])
    diffs = distribution(lambda idx: np.asarray(stat_a(idx)) - np.asarray(stat_b(idx)), n, n_boot, seed, strata)
    diffs = diffs[np.isfinite(diffs)]
    low, high = interval(diffs, level)
    p = min(1.0, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())) if diffs.size else float("nan")
    return {"value": value, "low": low, "high": high, "p_value": float(p)}


def mean_of(values: np.ndarray, groups=None) -> Statistic:
    """The NaN-ignoring mean of per-query ``values`` over each resample; with ``groups`` (each
    query's task, for resamples drawn with ``strata=groups``) the plain mean of per-group means."""
    values = np.asarray(values, dtype=np.float64)
    if groups is None:
        return lambda idx: nanmean_rows(values[idx], axis=1)
    columns = [np.flatnonzero(np.asarray(groups) == g) for g in np.unique(groups)]
    return lambda idx: nanmean_rows(np.stack([nanmean_rows(values[idx[:, c]], axis=1) for c in columns], axis=1), axis=1)


def gap_closed_of(router: np.ndarray, single: np.ndarray, oracle: np.ndarray, groups=None) -> Statistic:
    """(router - best single) / (oracle - best single) of per-query values, per resample."""
    means = [mean_of(v, groups) for v in (router, single, oracle)]

    def statistic(idx: np.ndarray) -> np.ndarray:
        r, s, o = (m(idx) for m in means)
        span = o - s
        return np.divide(r - s, span, out=np.full(len(span), np.nan), where=span > 0)

    return statistic
