"""The interface every evaluated router implements (``BaselineRouter``), apart from the registry that names them.

Reference routers (``routers``) and the embedding baselines (``baselines``) both subclass it, and
``routers.make`` builds any of them by name, so the two modules import this one, never each other.
(The trained router's inference API is ``routertrain.hub.router.Router``, a different thing.)
"""

from __future__ import annotations

import numpy as np


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
        choice = self.decide(ctx, split, scores)
        out = np.zeros(np.shape(scores))
        out[np.arange(len(choice)), choice] = 1.0
        return out
