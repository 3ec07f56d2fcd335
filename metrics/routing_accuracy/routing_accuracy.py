"""Routing accuracy as a Hugging Face ``evaluate`` metric: ``evaluate.load("metrics/routing_accuracy")``.

Inputs, one row per query: ``predictions`` = the router's scores per model (higher = route there),
``references`` = the models' labels in [0, 1] in the same order (NaN = missing). Outputs the routing
accuracy of the routing rule's decisions (argmax over the whole pool; exact ties to the higher mean
label, then the lower index), the per-query oracle, the best single model and the share of the gap
between them that the router closes, plus the random router's expected accuracy. ``missing``
(``complete``, default, or ``wrong``) says how queries with a missing label are scored. The
definitions are those of ``routertrain.evaluation.decision``, which this module calls.
"""

import datasets
import evaluate
import numpy as np

from routertrain.evaluation.decision import gap_closed, model_means, nanmean, oracle_per_query, random_accuracy, score_accuracy, scored

_DESCRIPTION = __doc__

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of lists of floats, (N queries, M models): router scores, e.g. P(correct).
    references: list of lists of floats, (N, M): labels in [0, 1]; NaN (float("nan")) = missing.
    best_single_index: optional int, the best single model chosen on training data. Default: the
        model best on these references (optimistic: chosen on the evaluated split).
    missing: "complete" (default: score the queries where every model has a label) or "wrong" (every
        query; a chosen model without a label counts as 0).
Returns:
    routing_accuracy, oracle_accuracy, best_single_accuracy, best_single_index, gap_closed,
    random_accuracy, n_queries (the scored queries).
Example:
    >>> metric = evaluate.load("metrics/routing_accuracy")
    >>> metric.compute(predictions=[[0.9, 0.1], [0.2, 0.7]], references=[[1, 0], [0, 0]])["routing_accuracy"]
    0.5
"""

_CITATION = """\
@misc{routertrain,
  title = {routertrain: train LLM routers by fine-tuning pretrained encoders end to end},
  year = {2026}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RoutingAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Sequence(datasets.Value("float64"))}
            ),
        )

    def _compute(self, predictions, references, best_single_index=None, missing="complete"):
        scores = np.asarray(predictions, dtype=np.float64)
        labels = np.asarray(references, dtype=np.float64)
        if scores.ndim != 2 or scores.shape != labels.shape:
            raise ValueError(f"predictions {scores.shape} and references {labels.shape} must both be (queries, models) with the same shape")
        means = model_means(labels)
        index = int(np.nanargmax(means)) if best_single_index is None else int(best_single_index)
        y, _ = scored(labels, missing)
        accuracy = score_accuracy(scores, labels, prior=means, missing=missing)
        oracle, single = nanmean(oracle_per_query(y)), nanmean(y[:, index])
        return {
            "routing_accuracy": accuracy,
            "oracle_accuracy": oracle,
            "best_single_accuracy": single,
            "best_single_index": index,
            "gap_closed": gap_closed(accuracy, single, oracle),
            "random_accuracy": random_accuracy(y),
            "n_queries": len(y),
        }
