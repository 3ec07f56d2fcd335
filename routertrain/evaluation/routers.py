"""Routers to compare, behind one interface: fit on train (and validation), then score a split.

Every router subclasses ``interface.BaselineRouter``: ``scores(ctx, split)`` is an N x M matrix (higher = route there); the routing rule
(``routertrain.routing.rule.choose``, ties to the lower cost, then the higher train mean, then pool
order) turns it into a decision (``ctx.choose``; a fine-tuned router applies its own saved setting).
Routers whose scores are P(correct) set ``probabilistic`` and get calibration metrics.

Reference routers: ``oracle`` (the labels themselves), ``best-single`` (the model best on train),
``random`` (the expected value of a uniformly random choice: its weights are 1/M on every model),
``random-draw`` (one seeded uniform draw per query), ``task-prior`` (per task, the models' mean
labels on train; unseen tasks get the overall means). ``finetuned`` scores with a trained router
folder (``Router.from_pretrained(...).predict``); ``frozen`` holds that router's base encoder fixed
and fits every embedding head on it, keeping the one best on validation (``baselines``). Hyper-
parameters of every router are chosen on validation, never on the split being evaluated.

Every router registers itself by name (``interface.register_router``); ``names(kind)`` lists them (the
evaluator's defaults, ``routertrain evaluate routers=``, the frozen control's heads and the claims'
band all ask it) and ``make(name)`` builds one.

``Context`` carries the data, the encoder used for embeddings, and a memo of fitted routers, so a
head is fitted once per encoder even when ``frozen`` and the plain baseline both need it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from routertrain.evaluation import baselines  # noqa: F401 (its routers register themselves on import)
from routertrain.evaluation.embeddings import split_embeddings
from routertrain.evaluation.decision import chosen_accuracy, model_means, task_prior_scores
from routertrain.routing.rule import choose
from routertrain.evaluation.interface import KINDS, REGISTRY, BaselineRouter, RouterUnavailable, register_router


@dataclass
class Context:
    data: object  # routertrain.data.RoutingData
    encoder: str | None = None  # frozen encoder of the embedding baselines (Hub id or folder)
    max_length: int = 128
    pooling: str = "mean"
    batch_size: int = 64
    device: str | None = None
    cache_root: str | None = None  # embeddings cache folder; None = $ROUTERTRAIN_CACHE/embeddings
    seed: int = 0
    average: str = "micro"  # how accuracies are averaged, here and in every validation choice: micro or macro (per task)
    missing: str = "complete"  # which queries are scored when labels are missing: complete (every model labelled) or wrong (unlabelled = failure)
    fitted: dict = field(default_factory=dict)  # (router name, encoder, pooling, max_length) -> fitted router
    _labels: dict = field(default_factory=dict)

    def labels(self, split: str) -> np.ndarray:
        if split not in self._labels:
            self._labels[split] = self.data.labels(split).astype(np.float64)
        return self._labels[split]

    @property
    def prior(self) -> np.ndarray:
        """Each model's mean train label (averaged as this context says): the rule's second tie-break."""
        if "prior" not in self._labels:
            self._labels["prior"] = model_means(self.labels("train"), self.tasks("train"), self.average)
        return self._labels["prior"]

    def choose(self, scores: np.ndarray) -> np.ndarray:
        """The routing rule on ``scores``: the chosen model per query (ties: lower cost, higher train mean, pool order)."""
        return choose(scores, self.data.costs, prior=self.prior)

    def decision_accuracy(self, choice: np.ndarray, split: str) -> float:
        """Routing accuracy of the chosen models on ``split``, averaged and scored as this context says."""
        return chosen_accuracy(choice, self.labels(split), self.tasks(split), self.average, self.missing)

    def accuracy(self, scores: np.ndarray, split: str) -> float:
        """Routing accuracy of the rule's decisions on ``scores`` (the rule of every choice on validation)."""
        return self.decision_accuracy(self.choose(scores), split)

    def queries(self, split: str) -> list[str]:
        return self.data.queries(split)

    def tasks(self, split: str) -> np.ndarray | None:
        return self.data.tasks(split)

    def embeddings(self, split: str) -> np.ndarray:
        if not self.encoder:
            raise RouterUnavailable("embedding baselines need an encoder: pass encoder=<Hub id or folder>")
        return split_embeddings(self.data, split, self.encoder, self.max_length, self.pooling, self.batch_size, self.device, self.cache_root)

    def with_encoder(self, encoder: str, pooling: str = "mean", max_length: int | None = None) -> Context:
        """The same data and memo, with embeddings from another encoder."""
        return replace(self, encoder=encoder, pooling=pooling, max_length=max_length or self.max_length, fitted=self.fitted, _labels=self._labels)

    def fit(self, name: str, **options) -> BaselineRouter:
        """The router ``name`` fitted on this context (memoised per encoder and options)."""
        key = (name, self.encoder, self.pooling, self.max_length, tuple(sorted(options.items())))
        if key not in self.fitted:
            self.fitted[key] = make(name, **options).fit(self)
        return self.fitted[key]


@register_router("oracle", "per-query best model (upper bound)", kind="reference")
class Oracle(BaselineRouter):
    name, probabilistic = "oracle", False

    def scores(self, ctx, split):
        y = ctx.labels(split)
        return np.where(np.isfinite(y), y, -1.0)


@register_router("best-single", "the model best on train, for every query", kind="reference")
class BestSingle(BaselineRouter):
    name = "best-single"

    def fit(self, ctx):
        self.means = model_means(ctx.labels("train"), ctx.tasks("train"), ctx.average)
        self.info = {"model": ctx.data.models[int(ctx.choose(self.means[None, :])[0])]}
        return self

    def scores(self, ctx, split):
        return np.tile(self.means, (len(ctx.labels(split)), 1))  # the rule breaks ties among equal means


@register_router("random-draw", "one seeded random draw per query", kind="reference", default=False, draw=True)
@register_router("random", "uniformly random model (expected value)", kind="reference")  # applied first: listed first
class Random(BaselineRouter):
    name, probabilistic = "random", False

    def __init__(self, draw: bool = False):
        super().__init__()
        self.draw = draw
        self.name = "random-draw" if draw else "random"

    def scores(self, ctx, split):
        shape = ctx.labels(split).shape
        return np.random.default_rng(ctx.seed).random(shape) if self.draw else np.zeros(shape)

    def weights(self, ctx, split, scores):
        if self.draw:
            return super().weights(ctx, split, scores)
        return np.full(np.shape(scores), 1.0 / np.shape(scores)[1])  # the expected value of a uniform draw


@register_router("task-prior", "per task, the model best on train", kind="reference")
class TaskPrior(BaselineRouter):
    name = "task-prior"

    def fit(self, ctx):
        tasks = ctx.tasks("train")
        if tasks is None:
            raise RouterUnavailable("task-prior needs a 'task' column, which this dataset does not have")
        self.train_tasks, self.train_labels = tasks, ctx.labels("train")
        return self

    def scores(self, ctx, split):
        tasks = ctx.tasks(split)
        if tasks is None:
            raise RouterUnavailable(f"task-prior needs a 'task' column in split '{split}'")
        return task_prior_scores(self.train_tasks, self.train_labels, tasks, ctx.average)


@register_router("finetuned", "the run's fine-tuned router (run=...)", kind="run")
class Finetuned(BaselineRouter):
    name = "finetuned"

    def __init__(self, router_dir: str | Path):
        super().__init__()
        self.router_dir = Path(router_dir)

    def fit(self, ctx):
        from routertrain.hub.router import Router as TrainedRouter

        self.router = TrainedRouter.from_pretrained(self.router_dir, device=ctx.device)
        missing = sorted(set(ctx.data.models) - set(self.router.models))
        if missing:
            raise ValueError(f"router {self.router_dir} was trained for another pool (lacks {missing[:3]}); evaluate it on the data it was trained for")
        self.columns = [self.router.models.index(m) for m in ctx.data.models]
        self.probs = {}
        self.info = {"router": str(self.router_dir), "base_model": self.router.config.base_model}
        if getattr(self.router, "blend", None):  # a blend with kNN and the task prior (routertrain blend)
            self.info["blend"] = {k: self.router.blend[k] for k in ("weights", "k")}
        return self

    def scores(self, ctx, split):
        probs = self.router.predict(ctx.queries(split), batch_size=ctx.batch_size)
        self.probs[split] = probs  # the router's own pool and order, for its own decisions
        return probs[:, self.columns].astype(np.float64)

    def decide(self, ctx, split, scores):
        """The router's own decisions (its saved calibration and tie-break keys), as ``route()`` makes them."""
        probs = self.probs.get(split)
        if probs is None or len(probs) != len(scores):
            self.scores(ctx, split)
            probs = self.probs[split]
        chosen = self.router.decide(probs)
        outside = [self.router.models[i] for i in chosen if self.router.models[i] not in ctx.data.models]
        if outside:
            raise ValueError(f"router {self.router_dir} routes to {outside[0]}, which the data has no labels for; evaluate it on data with every model of its pool")
        index = {m: j for j, m in enumerate(ctx.data.models)}
        return np.array([index[self.router.models[i]] for i in chosen], dtype=np.int64)


@register_router("frozen", "the run's base encoder frozen + best head on validation", kind="run")
class Frozen(BaselineRouter):
    """The fine-tuned router's base encoder, frozen, with the embedding head best on validation."""

    name = "frozen"

    def __init__(self, encoder: str, pooling: str = "mean", max_length: int | None = None, heads: tuple[str, ...] | None = None):
        super().__init__()
        self.encoder, self.pooling, self.max_length = encoder, pooling, max_length
        self.heads = heads or names("embedding")

    def fit(self, ctx):
        self.ctx = ctx.with_encoder(self.encoder, self.pooling, self.max_length)
        fitted = {h: self.ctx.fit(h) for h in self.heads}
        val = {h: ctx.decision_accuracy(r.decide(self.ctx, "validation", r.scores(self.ctx, "validation")), "validation") for h, r in fitted.items()}
        self.head = max(self.heads, key=lambda h: val[h])  # first of the best on ties
        self.best = fitted[self.head]
        self.info = {"encoder": self.encoder, "head": self.head, "validation_acc": val, **{f"head_{k}": v for k, v in self.best.info.items()}}
        return self

    def scores(self, ctx, split):
        return self.best.scores(self.ctx, split)

    def decide(self, ctx, split, scores):
        return self.best.decide(self.ctx, split, scores)


def names(kind: str | None = None, default: bool | None = None) -> tuple[str, ...]:
    """Registered routers of one ``kind`` (``interface.KINDS``) and/or in the default set or not: by kind, in
    ``KINDS`` order (references first), then in registration order."""
    chosen = [n for n, r in REGISTRY.items() if kind in (None, r.kind) and default in (None, r.default)]
    return tuple(sorted(chosen, key=lambda n: KINDS.index(REGISTRY[n].kind)))


def describe(name: str) -> str:
    return REGISTRY[name].description


def make(name: str, **options) -> BaselineRouter:
    """A fresh, unfitted router by name."""
    if name not in REGISTRY:
        raise ValueError(f"unknown router '{name}': choose from {', '.join(REGISTRY)}")
    entry = REGISTRY[name]
    return entry.factory(**{**entry.options, **options})
