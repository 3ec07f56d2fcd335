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
    ``scores(ctx, split)``, an N x M matrix (higher = route there). ``ctx`` is a ``routers.Context``."""

    name = "router"
    probabilistic = True  # scores are P(correct)

    def __init__(self):
        self.info: dict = {}  # chosen hyperparameters and other facts for the report

    def fit(self, ctx) -> BaselineRouter:
        return self

    def scores(self, ctx, split: str) -> np.ndarray:
        raise NotImplementedError
