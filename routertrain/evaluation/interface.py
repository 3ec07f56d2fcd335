"""The interface every evaluated router implements (``BaselineRouter``) and the registry that names them.

A router is one class and one registration::

    @register_router("my-router", "what it does, in the evaluate table's words", kind="embedding")
    class MyRouter(BaselineRouter): ...

Reference routers (``routers``) and the embedding baselines (``baselines``) both register here, and
``routers.make`` builds any of them by name, so the two modules import this one, never each other.
The evaluator's defaults, ``routertrain evaluate routers=...``, the frozen control's heads and the
claims' frozen-baseline band all read the registry (``routers.names``). (The trained router's
inference API is ``routertrain.hub.router.Router``, a different thing.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from routertrain.routing.rule import one_hot

KINDS = ("reference", "embedding", "lexical", "run")  # run: needs a trained run (run=...); embedding: a head on frozen embeddings


@dataclass(frozen=True)
class Registration:
    factory: type  # the router class, called with ``options`` (then the caller's options) to build one
    description: str
    kind: str
    default: bool  # in ``routertrain evaluate``'s default set
    options: dict = field(default_factory=dict)


REGISTRY: dict[str, Registration] = {}


def register_router(name: str, description: str, kind: str = "embedding", default: bool = True, **options):
    """Class decorator: register a ``BaselineRouter`` subclass under ``name``. ``kind`` is one of ``KINDS``:
    ``embedding`` routers are also fitted by the frozen control and counted in the claims' baseline band."""
    if kind not in KINDS:
        raise ValueError(f"router kind '{kind}' is not one of {', '.join(KINDS)}")

    def register(cls):
        if name in REGISTRY and REGISTRY[name].factory is not cls:
            raise ValueError(f"router name '{name}' is taken by {REGISTRY[name].factory.__name__}; register under another name")
        if "name" not in vars(cls):
            cls.name = name
        REGISTRY[name] = Registration(cls, description, kind, default and kind != "run", options)
        return cls

    return register


class RouterUnavailable(ValueError):
    """This router cannot run on this data (e.g. task-prior without tasks); it is skipped, with the reason."""


class BaselineRouter:
    """A router under evaluation: ``fit(ctx)`` on train (hyperparameters on validation), then
    ``scores(ctx, split)``, an N x M matrix (higher = route there), and ``decide(ctx, split, scores)``,
    the chosen model per query (by default the routing rule, ``ctx.choose``; a shipped router applies
    its own saved setting). ``ctx`` is a ``routers.Context``."""

    name = "router"
    probabilistic = True  # scores are P(correct)

    def __init__(self):
        self.info: dict = {}  # chosen hyperparameters and other facts for the report

    def fit(self, ctx) -> BaselineRouter:
        return self

    def scores(self, ctx, split: str) -> np.ndarray:
        raise NotImplementedError

    def decide(self, ctx, split: str, scores: np.ndarray) -> np.ndarray:
        """The chosen model's index per query, given this router's ``scores`` on ``split``."""
        return ctx.choose(scores)

    def weights(self, ctx, split: str, scores: np.ndarray) -> np.ndarray:
        """Routing weights per (query, model): one-hot on the decisions (the random reference overrides
        this with its expected value)."""
        return one_hot(self.decide(ctx, split, scores), np.shape(scores)[1])
