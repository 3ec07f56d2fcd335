"""Calibrate a router's routing setting to a budget, on its probabilities for unlabelled queries.

A *setting* is what ``Router.route`` needs besides the probabilities: a cost weight ``w`` and the
per-model costs it multiplies. The routing rule is always ``routertrain.routing.rule.choose`` (argmax
of P(correct) - w x cost; exact ties to the lower cost, then the higher train mean, then pool order).
Where a labelled split has per-query costs, the mean-cost and accuracy-share targets spend those.
Three targets, each solved by a monotone (bisection) search on ``w``:

- ``max_share``: the named models take at most a share of the calls. The setting then prices the
  named models at 1 and the others at 0 (``penalised``), so ``w`` is a handicap on the set, like
  RouteLLM's threshold: their share never rises as ``w`` grows, and is 0 once ``w`` > 1 (P is in [0, 1]).
  The smallest such ``w`` is returned: the least change to the router's own choices.
- ``mean_cost``: the mean cost of the chosen models is at most a value (the router's costs). The
  chosen cost of each query never rises with ``w``; the smallest ``w`` that meets it is returned.
- ``accuracy_share``: on a labelled split, keep at least this share of the router's routing accuracy
  at ``w`` = 0, as cheaply as possible: the largest ``w`` whose accuracy still meets it (accuracy
  treated as non-increasing in ``w``, as it is in expectation under the router's own probabilities;
  the returned ``w`` is checked to meet the target).

A target that cannot be met raises a one-line ``CalibrationError`` saying what can be reached. With
``allowed`` models (a server's backends), only those can be chosen, during the search and after:
a setting solved over the whole pool does not hold for a server that serves part of it.
``save_calibration`` stores the setting in the router's ``config.json`` (key ``calibration``, a ``RouterConfig`` field) and the card.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from routertrain.routing.outcome import chosen_costs, chosen_labels
from routertrain.routing.rule import choose, utility
from routertrain.hub.card import describe, render  # noqa: F401 (the setting in one line; re-exported for the command line)
from routertrain.provenance import atomic_write_json, atomic_write_text

STEPS = 60  # bisection halvings: the weight is found to within high / 2**60


class CalibrationError(ValueError):
    """A target that cannot be met, with what can be reached, in one line."""


def setting_costs(setting: dict | None, models: Sequence[str], costs: Sequence[float] | None) -> Sequence[float] | None:
    """The per-model costs the setting's cost weight multiplies: 1 for penalised models (a share
    target), else the router's own costs."""
    if setting and setting.get("penalised"):
        return [1.0 if m in setting["penalised"] else 0.0 for m in models]
    return costs


def decisions(probs: np.ndarray, models: Sequence[str], costs: Sequence[float] | None, setting: dict | None,
              prior: Sequence[float] | None = None) -> np.ndarray:
    """Index of the chosen model per row under a saved setting (``None``: no cost weight), by the one
    routing rule (``routertrain.routing.rule.choose``): exact ties go to the lower cost (the router's
    own costs, also under a share target), then the higher train mean ``prior``, then pool order."""
    setting = setting or {}
    probs = only(probs, models, setting.get("models"))
    weight, priced = float(setting.get("cost_weight", 0.0)), setting_costs(setting, models, costs)
    return choose(utility(probs, priced, weight) if weight else probs, costs, prior=prior)


def smallest_weight(holds: Callable[[float], bool], high: float) -> float:
    """The smallest w in [0, high] with ``holds(w)``, for a ``holds`` that is false and then true."""
    if holds(0.0):
        return 0.0
    low = 0.0
    for _ in range(STEPS):
        mid = (low + high) / 2
        low, high = (low, mid) if holds(mid) else (mid, high)
    return high


def largest_weight(holds: Callable[[float], bool], high: float) -> float:
    """The largest w in [0, high] with ``holds(w)``, for a ``holds`` that is true and then false."""
    if holds(high):
        return high
    low = 0.0
    for _ in range(STEPS):
        mid = (low + high) / 2
        low, high = (mid, high) if holds(mid) else (low, mid)
    return low


def cheapest_weight(probs: np.ndarray, costs: Sequence[float]) -> float:
    """A weight above which every query goes to a cheapest model (P differences are at most the P range)."""
    distinct = np.unique(np.asarray(costs, dtype=np.float64))
    if len(distinct) < 2:
        return 1.0
    finite = probs[np.isfinite(probs)]
    span = float(np.ptp(finite)) if finite.size else 0.0
    return 2.0 * max(span, 1e-6) / float(np.diff(distinct).min())


def only(probs: np.ndarray, models: Sequence[str], allowed: Sequence[str] | None) -> np.ndarray:
    """``probs`` with the models outside ``allowed`` (e.g. those without a backend) made unchoosable."""
    if allowed is None:
        return np.asarray(probs, dtype=np.float64)
    unknown = [m for m in allowed if m not in models]
    if unknown or not allowed:
        raise CalibrationError(f"{', '.join(unknown) or 'no model'} is not in this router's pool; choose from {', '.join(models)}")
    return np.where(np.isin(np.asarray(models), list(allowed)), np.asarray(probs, dtype=np.float64), -np.inf)


def check_probs(probs: np.ndarray, models: Sequence[str]) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(models) or len(probs) == 0:
        raise CalibrationError(f"calibration needs a (queries x {len(models)}) probability matrix, got shape {probs.shape}; give at least one query")
    return probs


def check_query_costs(query_costs, shape) -> np.ndarray:
    """Per-query costs of the calibration queries: one finite cost >= 0 per query and model."""
    cost = np.asarray(query_costs, dtype=np.float64)
    if cost.shape != tuple(shape):
        raise CalibrationError(f"per-query costs of shape {cost.shape} do not match the probabilities {tuple(shape)}; give one cost per query and model")
    if not np.isfinite(cost).all() or (cost < 0).any():
        raise CalibrationError("per-query costs hold a NaN, infinite or negative value; fill missing costs with the model's mean cost")
    return cost


def need_costs(costs, target: str) -> np.ndarray:
    if costs is None:
        raise CalibrationError(f"{target} needs model costs and this router has none; use a max-share target, or train with costs")
    return np.asarray(costs, dtype=np.float64)


def solve_max_share(probs: np.ndarray, models: Sequence[str], members: Sequence[str], share: float,
                    costs: Sequence[float] | None = None, prior: Sequence[float] | None = None) -> dict:
    """The smallest handicap on ``members`` that leaves them at most ``share`` of the calls (``costs``
    and ``prior``: the router's tie-break keys, as ``decisions`` uses them)."""
    probs = check_probs(probs, models)
    unknown = [m for m in members if m not in models]
    if unknown or not members:
        raise CalibrationError(f"max-share names {', '.join(unknown) or 'no model'}, not in this router's pool; choose from {', '.join(models)}")
    if not 0.0 <= share <= 1.0:
        raise CalibrationError(f"max-share {share} is not a share; give a value in [0, 1]")
    setting = {"target": {"max_share": {"models": list(members), "share": share}}, "penalised": list(members)}
    inside = np.isin(np.asarray(models), list(members))

    def reached(w: float) -> float:
        return float(inside[decisions(probs, models, costs, {**setting, "cost_weight": w}, prior)].mean())

    if reached(2.0) > share:  # a handicap above 1 moves every query that has a choice outside the set
        raise CalibrationError(
            f"max-share {share:g} cannot be reached: {', '.join(members)} take at least {reached(2.0):.1%} of these calls at any setting "
            f"(no other model can be chosen for those queries); name fewer models or allow at least {reached(2.0):.3g}"
        )
    w = smallest_weight(lambda w: reached(w) <= share, high=2.0)
    return {**setting, "cost_weight": w, "reached": {"share": reached(w)}, "n_queries": len(probs)}


def solve_mean_cost(probs: np.ndarray, models: Sequence[str], costs: Sequence[float] | None, target: float,
                    prior: Sequence[float] | None = None, query_costs: np.ndarray | None = None) -> dict:
    """The smallest cost weight whose routing costs at most ``target`` per query on average: measured
    on ``query_costs`` (per query and model) where given, else on each model's cost."""
    probs = check_probs(probs, models)
    cost = need_costs(costs, "a mean-cost target")
    spent_on = check_query_costs(query_costs, probs.shape) if query_costs is not None else cost

    def reached(w: float) -> float:
        return float(chosen_costs(decisions(probs, models, cost, {"cost_weight": w}, prior), spent_on).mean())

    high = cheapest_weight(probs, cost)
    if reached(high) > target:
        raise CalibrationError(
            f"mean cost {target:g} per query cannot be reached: on these {len(probs)} queries the routing costs between "
            f"{reached(high):g} (every query to a cheapest model) and {reached(0.0):g} (no cost weight); ask for at least {reached(high):g}"
        )
    w = smallest_weight(lambda w: reached(w) <= target, high)
    return {"target": {"mean_cost": target}, "cost_weight": w, "reached": {"mean_cost": reached(w)}, "n_queries": len(probs)}


def solve_accuracy_share(probs: np.ndarray, labels: np.ndarray, models: Sequence[str], costs: Sequence[float] | None, share: float,
                         prior: Sequence[float] | None = None, query_costs: np.ndarray | None = None, missing: str = "complete") -> dict:
    """The largest cost weight whose routing accuracy on ``labels`` keeps ``share`` of the accuracy at
    weight 0; decisions over the whole pool, queries scored as ``missing`` says (as the evaluator does)."""
    probs = check_probs(probs, models)
    labels = np.asarray(labels, dtype=np.float64)
    if labels.shape != probs.shape:
        raise CalibrationError(f"labels of shape {labels.shape} do not match the probabilities {probs.shape}; give one label per query and model")
    cost = need_costs(costs, "an accuracy-share target")
    if not 0.0 < share <= 1.0:
        raise CalibrationError(f"accuracy share {share} cannot be reached: the most accurate setting keeps 100% (share 1); give a value in (0, 1]")
    spent_on = check_query_costs(query_costs, probs.shape) if query_costs is not None else cost

    def choice(w: float) -> np.ndarray:
        return decisions(probs, models, cost, {"cost_weight": w}, prior)

    def accuracy(w: float) -> float:
        return float(chosen_labels(choice(w), labels, missing)[0].mean())

    best = accuracy(0.0)
    w = largest_weight(lambda w: accuracy(w) >= share * best, cheapest_weight(probs, cost))
    spent = float(chosen_costs(choice(w), spent_on).mean())
    return {
        "target": {"accuracy_share": share},
        "cost_weight": w,
        "reached": {"accuracy": accuracy(w), "accuracy_at_zero": best, "mean_cost": spent},
        "n_queries": len(probs),
    }


def save_calibration(folder: str | os.PathLike, setting: dict | None) -> None:
    """Store ``setting`` as the router's default (``config.json`` key ``calibration``; a format-1
    folder's ``router_config.json``) and rewrite its card; ``None`` removes it. Each file is
    replaced atomically."""
    import json

    folder = Path(folder)
    path = folder / ("router_config.json" if (folder / "router_config.json").is_file() else "config.json")  # format 1 or 2
    config = json.loads(path.read_text())
    if setting is None:
        config.pop("calibration", None)
    else:
        config["calibration"] = setting
    atomic_write_json(path, config)
    atomic_write_text(folder / "README.md", render(folder))


def solve(probs: np.ndarray, models: Sequence[str], costs: Sequence[float] | None, max_share: dict | None = None,
          mean_cost: float | None = None, accuracy_share: float | None = None, labels: np.ndarray | None = None,
          allowed: Sequence[str] | None = None, prior: Sequence[float] | None = None, query_costs: np.ndarray | None = None,
          missing: str = "complete") -> dict:
    """The setting for exactly one target (see the module docstring), choosing only among ``allowed``
    models when given (the models a server has backends for); the setting records them. ``prior``:
    the router's train means (the rule's tie-break); ``query_costs``: per-query costs of these
    queries (a labelled split's), which the mean-cost and accuracy-share targets then spend."""
    setting = solve_target(only(probs, models, allowed), models, costs, max_share, mean_cost, accuracy_share, labels, prior, query_costs, missing)
    return setting if allowed is None else {**setting, "models": list(allowed)}


def solve_target(probs, models, costs, max_share, mean_cost, accuracy_share, labels, prior=None, query_costs=None, missing="complete") -> dict:
    given = [name for name, value in (("max_share", max_share), ("mean_cost", mean_cost), ("accuracy_share", accuracy_share)) if value is not None]
    if len(given) != 1:
        raise CalibrationError(f"give exactly one target (max_share, mean_cost or accuracy_share), got {', '.join(given) or 'none'}")
    if max_share is not None:
        if len(max_share) != 1:
            raise CalibrationError("max_share takes one entry: a model, or a tuple of models, and its share")
        (members, share), = max_share.items()
        return solve_max_share(probs, models, [members] if isinstance(members, str) else list(members), float(share), costs, prior)
    if mean_cost is not None:
        return solve_mean_cost(probs, models, costs, float(mean_cost), prior, query_costs)
    if labels is None:
        raise CalibrationError("an accuracy-share target needs labels (queries x models); calibrate on a labelled split")
    return solve_accuracy_share(probs, labels, models, costs, float(accuracy_share), prior, query_costs, missing)
