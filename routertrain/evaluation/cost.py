"""Cost-aware routing: the cost-quality curve and its area (RouterBench's AIQ), and RouteLLM's APGR / CPT.

Cost-quality curve (any pool with known, not all equal, model costs): for each cost weight lambda in
a sweep, route every query by the routing rule (``routertrain.routing.rule.choose``: argmax_j
(score_ij - lambda * cost_j) with cost_j the model's mean cost, which is all a router knows before
the call; ties to the lower cost, then the higher train mean, then pool order) and record
(normalised cost, accuracy). The cost spent is the chosen model's cost on that query: the data's
per-query costs where it has them (RouterBench), else the model's mean cost. Normalised cost =
(mean spent - mean per-query cheapest cost) / (mean per-query dearest cost - mean per-query cheapest
cost), so always-cheapest is 0 and always-dearest is 1. The sweep is lambda = 0 plus a geometric grid
up to a lambda large enough that every query goes to a cheapest model. Labels are the scored ones
(``decision.scored``: no NaN), so accuracy and cost are taken over the same queries.

Non-decreasing convex hull (RouterBench): the upper convex hull of the curve's points, cut after its
highest point (mixing two routings at random reaches every point between them, and spending more
never has to lose accuracy). AIQ = the area under that hull over normalised cost [0, 1], the hull
held flat beyond its last point (and before its first, which the sweep puts at 0): the mean
accuracy over cost budgets.

Two-model pools (RouteLLM, Ong et al. 2024): a router routes the queries with the largest score
difference (strong - weak) to the strong model. Calling the strong model on a share x of the queries
gives accuracy acc(x); with acc_weak = acc(0), acc_strong = acc(1),
PGR(x) = (acc(x) - acc_weak) / (acc_strong - acc_weak). The curve is computed exactly at every
boundary between groups of tied score differences and linear in between (the expectation of random
tie-breaking); RouteLLM samples it at 10 quantile thresholds, of which this is the limit.
APGR = integral of PGR(x) dx over x in [0, 1] (random routing: 0.5); CPT(p) = the smallest share of
strong calls x with PGR(x) >= p (a share in [0, 1]; RouteLLM quotes it in %). Only queries where both
models have a label count; NaN when the strong model is not better than the weak one.
"""

from __future__ import annotations

import numpy as np

from routertrain.evaluation.decision import accuracy, decide, model_means
from routertrain.routing.outcome import weighted_costs

N_LAMBDAS = 100


def spent(costs, n: int) -> np.ndarray:
    """(n, M) per-query costs: ``costs`` as given when per query, else each model's cost on every query."""
    cost = np.asarray(costs, dtype=np.float64)
    return np.broadcast_to(cost, (n, cost.shape[-1])) if cost.ndim == 1 else cost


def mean_cost(weights: np.ndarray, costs) -> float:
    """Mean cost of the routed models (``costs``: per model, or per query and model)."""
    return float(weighted_costs(weights, costs).mean())


def normalised_cost(weights: np.ndarray, costs) -> float:
    """Mean cost spent, 0 = always the cheapest model of each query, 1 = always the dearest."""
    cost = spent(costs, len(weights))
    low, high = cost.min(axis=1).mean(), cost.max(axis=1).mean()
    return (mean_cost(weights, cost) - low) / (high - low) if high > low else float("nan")


def lambda_sweep(scores: np.ndarray, costs, n: int = N_LAMBDAS) -> np.ndarray:
    """0 plus ``n - 1`` geometric values, the largest sending every query to a cheapest model."""
    cost = np.unique(np.asarray(costs, dtype=np.float64))
    if len(cost) < 2:
        raise ValueError("every model has the same cost: a cost-quality curve needs models of different cost")
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    span = float(s.max() - s.min()) if s.size and s.max() > s.min() else 1.0
    high = 2.0 * span / np.diff(cost).min()
    return np.concatenate([[0.0], np.geomspace(high * 1e-4, high, n - 1)])


def cost_quality_curve(scores: np.ndarray, labels: np.ndarray, costs, query_costs=None, n: int = N_LAMBDAS, prior=None,
                       weights_at_zero: np.ndarray | None = None) -> dict:
    """``{'lambda', 'cost', 'accuracy'}`` arrays over the cost-weight sweep (cost normalised): decisions
    by the rule on the models' ``costs``, cost spent on ``query_costs`` (default: the models' costs).
    ``weights_at_zero``: the router's own weights at cost weight 0 where they are not the rule's (the
    random reference's expected value)."""
    scores = np.asarray(scores, dtype=np.float64)
    cost = np.asarray(costs, dtype=np.float64)
    paid = cost if query_costs is None else query_costs
    lambdas = lambda_sweep(scores, cost, n)
    decisions = [decide(scores, cost, prior, lam) for lam in lambdas]
    if weights_at_zero is not None:
        decisions[0] = np.asarray(weights_at_zero, dtype=np.float64)
    points = [(normalised_cost(w, paid), accuracy(w, labels)) for w in decisions]
    xs, ys = (np.array(v) for v in zip(*points))
    return {"lambda": lambdas, "cost": xs, "accuracy": ys}


def nondecreasing_hull(cost: np.ndarray, acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (by increasing cost) of the upper convex hull of the points, cut after its highest one."""
    keep = np.isfinite(cost) & np.isfinite(acc)
    pts = sorted(zip(np.asarray(cost)[keep], np.asarray(acc)[keep]), key=lambda p: (p[0], -p[1]))
    hull: list[tuple[float, float]] = []
    for x, y in pts:
        if hull and x == hull[-1][0]:
            continue  # same cost, lower accuracy
        while len(hull) >= 2:
            (x0, y0), (x1, y1) = hull[-2], hull[-1]
            if (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0) >= 0:  # hull[-1] on or below the chord
                hull.pop()
            else:
                break
        hull.append((x, y))
    if not hull:
        return np.array([]), np.array([])
    hx, hy = (np.array(v, dtype=np.float64) for v in zip(*hull))
    top = int(np.argmax(hy))
    return hx[: top + 1], hy[: top + 1]


def aiq(cost: np.ndarray, acc: np.ndarray) -> float:
    """Area under the non-decreasing convex hull over normalised cost [0, 1] (flat outside its points)."""
    hx, hy = nondecreasing_hull(cost, acc)
    if len(hx) == 0:
        return float("nan")
    inside = float(np.sum((hx[1:] - hx[:-1]) * (hy[1:] + hy[:-1]) / 2))
    return inside + max(hx[0], 0.0) * hy[0] + max(1.0 - hx[-1], 0.0) * hy[-1]


def strong_call_curve(scores: np.ndarray, labels: np.ndarray, strong: int, weak: int) -> dict:
    """Accuracy vs share of strong calls: ``{'x', 'accuracy', 'acc_weak', 'acc_strong', 'n'}``."""
    labels = np.asarray(labels, dtype=np.float64)
    keep = np.isfinite(labels[:, strong]) & np.isfinite(labels[:, weak])
    n = int(keep.sum())
    if n == 0:
        raise ValueError("no query has labels for both models of the pair: APGR needs both")
    s = np.asarray(scores, dtype=np.float64)[keep]
    y_strong, y_weak = labels[keep, strong], labels[keep, weak]
    diff = s[:, strong] - s[:, weak]
    order = np.argsort(-diff, kind="stable")
    gain = np.concatenate([[0.0], np.cumsum((y_strong - y_weak)[order])])
    ends = np.flatnonzero(np.diff(diff[order]) != 0) + 1  # where a group of tied differences ends
    steps = np.concatenate([[0], ends, [n]])
    return {
        "x": steps / n,
        "accuracy": (y_weak.sum() + gain[steps]) / n,
        "acc_weak": float(y_weak.mean()),
        "acc_strong": float(y_strong.mean()),
        "n": n,
    }


def pgr(curve: dict) -> np.ndarray:
    span = curve["acc_strong"] - curve["acc_weak"]
    return (curve["accuracy"] - curve["acc_weak"]) / span if span > 0 else np.full(len(curve["x"]), np.nan)


def apgr(curve: dict) -> float:
    """Average performance gap recovered: the area under PGR over the share of strong calls."""
    g, x = pgr(curve), curve["x"]
    return float(np.sum((x[1:] - x[:-1]) * (g[1:] + g[:-1]) / 2))


def cpt(curve: dict, target: float) -> float:
    """Call-performance threshold: the least share of strong calls with PGR >= ``target``."""
    g, x = pgr(curve), curve["x"]
    if not np.isfinite(g).all():
        return float("nan")
    if g[0] >= target:
        return float(x[0])
    for i in range(len(g) - 1):
        if g[i + 1] >= target:
            return float(x[i] + (target - g[i]) / (g[i + 1] - g[i]) * (x[i + 1] - x[i]))
    return float("nan")


def strong_and_weak(costs, train_labels: np.ndarray) -> tuple[int, int]:
    """The pair's strong model: the dearer one when costs differ, else the better one on train."""
    if costs is not None and costs[0] != costs[1]:
        strong = int(np.argmax(costs))
    else:
        strong = int(np.nanargmax(model_means(train_labels)))
    return strong, 1 - strong


def two_model_report(scores: np.ndarray, labels: np.ndarray, strong: int, weak: int) -> dict:
    curve = strong_call_curve(scores, labels, strong, weak)
    return {"apgr": apgr(curve), "cpt50": cpt(curve, 0.5), "cpt80": cpt(curve, 0.8)}
