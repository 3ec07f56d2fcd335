"""Baseline routers on frozen query embeddings (and one on TF-IDF): the encoder is never trained here.

Every baseline predicts P(correct) per (query, model) from train labels and picks its hyperparameter
on validation routing accuracy (ties: the first in the grid). Each registers itself by name
(``interface.register_router``), which is all the evaluator, the CLI and the claims need:

- ``knn``: the mean label of the k most cosine-similar train queries (NaN-aware; a model without a
  label among the neighbours gets its train mean); k in ``K_GRID``. Neighbours come from FAISS, exact
  by default; ``ROUTERTRAIN_KNN_INDEX=hnsw`` (or ``Knn(index="hnsw")``) takes an approximate HNSW index.
- ``logreg``: logistic regression per model (``heads.fit_logistic``); L2 weight in ``L2_GRID``.
- ``mlp``: a one-hidden-layer MLP (``heads.fit_mlp``), early stopping on validation loss.
- ``mf``: matrix factorisation of (query, model) correctness, EmbedLLM-style (``heads.fit_factorisation``).
- ``kmeans``: k-means on train embeddings; a query gets its cluster's mean label per model (models
  without a label in the cluster get their train mean); k in ``CLUSTER_GRID`` (at most the number of
  distinct train embeddings).
- ``tfidf``: TF-IDF of word uni- and bigrams fitted on train queries, then logistic regression per
  model as ``logreg``; a lexical baseline that needs no encoder.
"""

from __future__ import annotations

import os

import numpy as np

from routertrain.model import heads
from routertrain.evaluation.decision import model_means
from routertrain.routing.neighbours import BLOCK, fill, neighbour_means  # noqa: F401 (re-exported)
from routertrain.routing.neighbours import neighbours as numpy_neighbours
from routertrain.evaluation.interface import BaselineRouter, register_router

K_GRID = (1, 3, 5, 10, 20, 50, 100, 200, 500, 1000)  # 500 and 1000 added when validation chose k = 200, then the edge (MMLU-Pro)
L2_GRID = (1e-5, 1e-4, 1e-3, 1e-2)
CLUSTER_GRID = (4, 8, 16, 32, 64, 128)
KNN_INDEXES = ("exact", "hnsw")


def pick(candidates: dict, ctx, score) -> tuple:
    """The candidate whose ``score(candidate, 'validation')`` routes best on validation, and all accuracies."""
    acc = {k: ctx.accuracy(score(c, "validation"), "validation") for k, c in candidates.items()}
    best = max(acc, key=lambda k: (np.nan_to_num(acc[k], nan=-1.0)))
    return best, {str(k): v for k, v in acc.items()}


def neighbours(queries: np.ndarray, keys: np.ndarray, k: int, index: str | None = None) -> np.ndarray:
    """Indices of the ``k`` most similar rows of ``keys`` (inner product; cosine on unit rows) per query
    row, most similar first. ``index``: ``exact`` (the default; FAISS's flat index, or numpy blocks
    where faiss-cpu is not installed) or ``hnsw`` (FAISS's HNSW graph: approximate, for millions of
    keys); ``None`` reads ``$ROUTERTRAIN_KNN_INDEX``. (A shipped blend's kNN always searches exactly
    with ``routertrain.routing.neighbours``, so it needs no optional package at inference.)"""
    index = index or os.environ.get("ROUTERTRAIN_KNN_INDEX", "exact")
    if index not in KNN_INDEXES:
        raise ValueError(f"kNN index '{index}': use one of {', '.join(KNN_INDEXES)} (ROUTERTRAIN_KNN_INDEX)")
    try:
        import faiss
    except ImportError:
        if index != "exact":
            raise ValueError(f"kNN index '{index}' needs faiss-cpu: pip install 'routertrain[scale]'") from None
        return numpy_neighbours(queries, keys, k)
    keys = np.ascontiguousarray(keys, dtype=np.float32)
    if index == "exact":
        search = faiss.IndexFlatIP(keys.shape[1])
    else:
        search = faiss.IndexHNSWFlat(keys.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        search.hnsw.efSearch = max(128, k)
    search.add(keys)
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 16 * BLOCK):
        out[start : start + 16 * BLOCK] = search.search(np.ascontiguousarray(queries[start : start + 16 * BLOCK], dtype=np.float32), k)[1]
    return out


@register_router("knn", "k nearest train queries by cosine (k on validation)")
class Knn(BaselineRouter):
    name = "knn"

    def __init__(self, k: int | None = None, index: str | None = None):
        super().__init__()
        self.fixed_k, self.index = k, index

    def fit(self, ctx):
        self.keys, self.y = ctx.embeddings("train"), ctx.labels("train")
        self.means = model_means(self.y)
        grid = (self.fixed_k,) if self.fixed_k else tuple(k for k in K_GRID if k <= len(self.y)) or (len(self.y),)
        nbrs = neighbours(ctx.embeddings("validation"), self.keys, max(grid), self.index)
        self.k, acc = pick({k: k for k in grid}, ctx, lambda k, split: self.average(nbrs[:, :k]))
        self.info = {"k": self.k, "validation_acc": acc}
        return self

    def average(self, idx: np.ndarray) -> np.ndarray:
        """Mean train label per model over the neighbour indices ``idx`` (n, k)."""
        return neighbour_means(self.y, idx, self.means)

    def scores(self, ctx, split):
        return self.average(neighbours(ctx.embeddings(split), self.keys, self.k, self.index))


@register_router("logreg", "logistic regression per model (L2 on validation)")
class Logistic(BaselineRouter):
    name = "logreg"

    def features(self, ctx, split: str):
        return ctx.embeddings(split)

    def fit(self, ctx):
        x, y = self.features(ctx, "train"), ctx.labels("train")
        models = {l2: heads.fit_logistic(x, y, l2, ctx.seed) for l2 in L2_GRID}
        best, acc = pick(models, ctx, lambda m, split: heads.predict(m, self.features(ctx, split)))
        self.model, self.info = models[best], {"l2": best, "validation_acc": acc}
        return self

    def scores(self, ctx, split):
        return heads.predict(self.model, self.features(ctx, split))


@register_router("tfidf", "TF-IDF + logistic regression per model (lexical)", kind="lexical")
class Tfidf(Logistic):
    name = "tfidf"

    def features(self, ctx, split: str):
        return self.vectorizer.transform(ctx.queries(split))

    def fit(self, ctx):
        from sklearn.feature_extraction.text import TfidfVectorizer

        train = ctx.queries("train")
        min_df = 2 if len(train) >= 100 else 1
        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=min_df, max_features=50_000, sublinear_tf=True).fit(train)
        super().fit(ctx)
        self.info["vocabulary"] = len(self.vectorizer.vocabulary_)
        return self


@register_router("mlp", "one-hidden-layer MLP, early stopping on validation")
class Mlp(BaselineRouter):
    name = "mlp"

    def fit(self, ctx):
        train = (ctx.embeddings("train"), ctx.labels("train"))
        self.model = heads.fit_mlp(train, (ctx.embeddings("validation"), ctx.labels("validation")), ctx.seed)
        return self

    def scores(self, ctx, split):
        return heads.predict(self.model, ctx.embeddings(split))


@register_router("mf", "matrix factorisation, EmbedLLM-style")
class Factorised(BaselineRouter):
    name = "mf"

    def fit(self, ctx):
        train = (ctx.embeddings("train"), ctx.labels("train"))
        self.model = heads.fit_factorisation(train, (ctx.embeddings("validation"), ctx.labels("validation")), ctx.seed)
        self.info = {"rank": self.model.models.shape[1]}
        return self

    def scores(self, ctx, split):
        return heads.predict(self.model, ctx.embeddings(split))


@register_router("kmeans", "best model per k-means cluster (k on validation)")
class Clusters(BaselineRouter):
    name = "kmeans"

    def fit(self, ctx):
        from sklearn.cluster import KMeans

        x, y = ctx.embeddings("train"), ctx.labels("train")
        self.means = model_means(y)
        fitted = {}
        distinct = len(np.unique(x, axis=0))
        for k in tuple(k for k in CLUSTER_GRID if k <= distinct) or (1,):
            km = KMeans(n_clusters=k, n_init=3, random_state=ctx.seed).fit(x)
            table = np.stack([fill(model_means(y[km.labels_ == c])[None, :], self.means)[0] for c in range(k)])
            fitted[k] = (km, table)
        best, acc = pick(fitted, ctx, lambda f, split: f[1][f[0].predict(ctx.embeddings(split))])
        (self.kmeans, self.table), self.info = fitted[best], {"k": best, "validation_acc": acc}
        return self

    def scores(self, ctx, split):
        return self.table[self.kmeans.predict(ctx.embeddings(split))]
