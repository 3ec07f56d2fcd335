"""Small trainable heads on frozen query features: logistic regression, MLP, matrix factorisation.

Each head maps features (N x d, dense or a torch sparse matrix) to one logit per model and is trained
with ``routertrain.model.modeling.masked_bce`` (missing labels masked; graded labels are soft targets), so
the heads estimate P(correct) just as the fine-tuned router does. Training is seeded inside
``torch.random.fork_rng`` (the global torch seed is left alone) and deterministic on CPU.

- logistic regression: a linear layer (one logistic regression per model, fitted jointly; the loss
  separates over models) with an L2 penalty on the weights, fitted full batch by L-BFGS from zeros.
- MLP: d -> hidden -> M with ReLU and dropout, AdamW, early stopping on validation loss.
- matrix factorisation in the spirit of EmbedLLM: a learned embedding e_m per model and a linear
  projection P of the query features; logit = <P x, e_m> + b_m. Same optimiser as the MLP.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from routertrain.model.modeling import masked_bce


def as_tensor(features) -> torch.Tensor:
    """Dense float32 tensor, or a sparse COO tensor for a scipy sparse matrix (TF-IDF)."""
    if hasattr(features, "tocoo"):
        coo = features.tocoo()
        idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        return torch.sparse_coo_tensor(idx, torch.from_numpy(coo.data.astype(np.float32)), coo.shape, check_invariants=False).coalesce()
    return torch.as_tensor(np.asarray(features, dtype=np.float32))


def targets(labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    y = np.asarray(labels, dtype=np.float32)
    mask = np.isfinite(y)
    return torch.from_numpy(np.where(mask, y, 0.0).astype(np.float32)), torch.from_numpy(mask.astype(np.float32))


class Linear(nn.Module):
    def __init__(self, d: int, m: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(d, m))
        self.bias = nn.Parameter(torch.zeros(m))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.sparse.mm(x, self.weight) if x.is_sparse else x @ self.weight) + self.bias


class MLP(nn.Module):
    def __init__(self, d: int, m: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, m))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Factorisation(nn.Module):
    def __init__(self, d: int, m: int, rank: int = 64):
        super().__init__()
        self.project = nn.Linear(d, rank, bias=False)
        self.models = nn.Parameter(torch.randn(m, rank) / rank**0.5)
        self.bias = nn.Parameter(torch.zeros(m))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(x) @ self.models.T + self.bias


def fit_logistic(features, labels: np.ndarray, l2: float, seed: int = 0, max_iter: int = 200) -> Linear:
    """Logistic regression per model: minimise masked BCE + l2 * ||W||^2 with L-BFGS."""
    x, (y, mask) = as_tensor(features), targets(labels)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Linear(x.shape[1], y.shape[1])
        opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = masked_bce(model(x), y, mask) + l2 * model.weight.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
    return model.eval()


def fit_neural(
    model: nn.Module,
    train: tuple,
    validation: tuple,
    seed: int = 0,
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    batch_size: int = 128,
    max_epochs: int = 100,
    patience: int = 5,
) -> nn.Module:
    """AdamW on masked BCE; keeps the weights of the best validation loss (early stopping).

    ``train`` and ``validation`` are (features, labels) pairs; ``model`` is built by the caller
    inside the same seed (see ``fit_mlp`` and ``fit_factorisation``).
    """
    x, (y, mask) = as_tensor(train[0]), targets(train[1])
    xv, (yv, mv) = as_tensor(validation[0]), targets(validation[1])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    best, best_loss, waited = copy.deepcopy(model.state_dict()), float("inf"), 0
    for _ in range(max_epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=generator).split(batch_size):
            opt.zero_grad()
            masked_bce(model(x[idx]), y[idx], mask[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            loss = float(masked_bce(model(xv), yv, mv))
        if loss < best_loss - 1e-6:
            best, best_loss, waited = copy.deepcopy(model.state_dict()), loss, 0
        else:
            waited += 1
            if waited >= patience:
                break
    model.load_state_dict(best)
    return model.eval()


def fit_mlp(train: tuple, validation: tuple, seed: int = 0, hidden: int = 256) -> MLP:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MLP(np.shape(train[0])[1], np.shape(train[1])[1], hidden)
        return fit_neural(model, train, validation, seed)


def fit_factorisation(train: tuple, validation: tuple, seed: int = 0, rank: int = 64) -> Factorisation:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Factorisation(np.shape(train[0])[1], np.shape(train[1])[1], rank)
        return fit_neural(model, train, validation, seed)


@torch.no_grad()
def predict(model: nn.Module, features) -> np.ndarray:
    """P(correct) per (query, model)."""
    return torch.sigmoid(model(as_tensor(features))).numpy().astype(np.float64)
