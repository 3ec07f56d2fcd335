"""The routing rule: one model per query, chosen the same way in evaluation, ``route()``, calibration,
blends and ``serve``. This module imports nothing of routertrain (numpy only).

Given P(correct) (or any score, higher = better) per (query, model), the rule picks per query

    argmax_j  score_ij - cost_weight * cost_j        over the models with cost_j <= max_cost (if set)

**Ties.** Exact ties of that utility are broken deterministically, in this order: the lower cost
(``costs``; skipped without costs), the higher mean label on train (``prior``, stored in the router
folder; skipped without one), then pool order (the lower index). ``tie_order`` turns these keys into
one strict ranking of the pool, so every caller breaks ties alike.

**Non-finite values.** A NaN score is never chosen (it counts as -inf); a query with no choosable
model is an error. Non-finite costs, cost weights or budgets are refused with a one-line ValueError
(``check_costs``, ``check_number``): a NaN cost would otherwise win every query.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def check_number(name: str, value) -> None:
    """A one-line error unless ``value`` is a finite number >= 0 (cost weights and budgets)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def check_cost_options(cost_weight, max_cost) -> None:
    """``cost_weight`` and ``max_cost``, each None (the saved setting decides) or a finite number >= 0."""
    if cost_weight is not None:
        check_number("cost_weight", cost_weight)
    if max_cost is not None:
        check_number("max_cost", max_cost)


def check_costs(costs, n_models: int | None = None, what: str = "costs") -> np.ndarray | None:
    """Per-model costs as a float array, refused in one line when any is NaN, infinite or negative
    (or when there is not one per model); None stays None."""
    if costs is None:
        return None
    cost = np.asarray(costs, dtype=np.float64)
    if cost.ndim != 1 or (n_models is not None and len(cost) != n_models):
        raise ValueError(f"{what} give {cost.size} values for {n_models} models; give one cost per model")
    bad = np.flatnonzero(~np.isfinite(cost) | (cost < 0))
    if bad.size:
        raise ValueError(f"{what} hold {cost[bad[0]]!r} at model {bad[0]}: every cost must be a finite number >= 0; fix the costs or drop them")
    return cost


def check_finite(values, what: str) -> np.ndarray:
    """``values`` as floats, refused in one line when any is NaN or infinite (probabilities, priors)."""
    arr = np.asarray(values, dtype=np.float64)
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{what} hold a non-finite value ({arr[tuple(bad[0])]!r} at {tuple(int(i) for i in bad[0])}); the source is corrupt: rebuild it")
    return arr


def nanmean_rows(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN; NaN (without a warning) where every value is NaN."""
    x = np.asarray(x, dtype=np.float64)
    count = np.isfinite(x).sum(axis=axis)
    total = np.nansum(x, axis=axis)
    return np.divide(total, count, out=np.full(np.shape(total), np.nan), where=count > 0)


def tie_order(n_models: int, costs: Sequence[float] | None = None, prior: Sequence[float] | None = None) -> np.ndarray:
    """A strict rank per model (higher wins a tie): lower cost first, then higher ``prior`` (the mean
    train label), then the lower pool index. A NaN prior ranks last among equal costs."""
    index = np.arange(n_models)
    cost = np.zeros(n_models) if costs is None else np.asarray(costs, dtype=np.float64)
    pref = np.zeros(n_models) if prior is None else np.nan_to_num(np.asarray(prior, dtype=np.float64), nan=-np.inf)
    if len(cost) != n_models or len(pref) != n_models:
        raise ValueError(f"tie-break keys for {len(cost)} costs and {len(pref)} priors do not fit a pool of {n_models} models")
    order = np.lexsort((index, -pref, cost))  # the winner of every tie first
    rank = np.empty(n_models, dtype=np.int64)
    rank[order] = np.arange(n_models, 0, -1)
    return rank


def utility(scores: np.ndarray, costs: Sequence[float] | None = None, cost_weight: float = 0.0, max_cost: float | None = None) -> np.ndarray:
    """score - cost_weight * cost per (query, model); -inf for NaN scores and models over ``max_cost``."""
    check_cost_options(cost_weight, max_cost)
    u = np.array(scores, dtype=np.float64, ndmin=2)
    u[np.isnan(u)] = -np.inf
    if costs is None:
        if cost_weight or max_cost is not None:
            raise ValueError("this router has no model costs: cost_weight and max_cost need costs (set them when building the dataset)")
        return u
    cost = check_costs(costs, u.shape[1])
    if cost_weight:
        u = u - cost_weight * cost
    if max_cost is not None:
        allowed = cost <= max_cost
        if not allowed.any():
            raise ValueError(f"no model costs at most max_cost={max_cost} (cheapest: {cost.min()}); raise the budget")
        u[:, ~allowed] = -np.inf
    return u


def choose(scores: np.ndarray, costs: Sequence[float] | None = None, cost_weight: float = 0.0, max_cost: float | None = None,
           prior: Sequence[float] | None = None, allowed: np.ndarray | None = None) -> np.ndarray:
    """Index of the chosen model per row of ``scores`` (see the module docstring for the rule).
    ``allowed``: an optional boolean mask over the pool (e.g. the models a server has backends for)."""
    u = utility(scores, costs, cost_weight, max_cost)
    if allowed is not None:
        u[:, ~np.asarray(allowed, dtype=bool)] = -np.inf
    if len(u) == 0:
        return np.zeros(0, dtype=np.int64)
    best = u.max(axis=1, keepdims=True)
    if (best == -np.inf).any():
        row = int(np.flatnonzero(best[:, 0] == -np.inf)[0])
        raise ValueError(f"query {row} has no choosable model (every score is NaN or excluded); check the router's outputs and the allowed models")
    rank = tie_order(u.shape[1], costs, prior)
    return np.where(u == best, rank[None, :], 0).argmax(axis=1)


def one_hot(choice: np.ndarray, n_models: int) -> np.ndarray:
    """Routing weights of explicit choices: 1 on the chosen model of each row."""
    choice = np.asarray(choice, dtype=np.int64)
    weights = np.zeros((len(choice), n_models))
    weights[np.arange(len(choice)), choice] = 1.0
    return weights
