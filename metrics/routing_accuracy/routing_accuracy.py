"""Routing accuracy as a Hugging Face ``evaluate`` metric: ``evaluate.load("metrics/routing_accuracy")``.

Inputs, one row per query: ``predictions`` = the router's scores per model (higher = route there),
``references`` = the models' labels in [0, 1] in the same order (NaN = missing). Outputs the routing
accuracy of argmax(predictions) over the models with a label (exactly tied top models share the
query evenly), the per-query oracle, the best single model (where it has no label, the next best) and
the share of the gap between them that the router closes, plus the random router's expected
accuracy. The definitions are those of ``routertrain.evaluation.decision``, which this module calls.
"""

import datasets
import evaluate
import numpy as np

from routertrain.evaluation.decision import (
    best_single_per_query,
    gap_closed,
    model_means,
    nanmean,
    oracle_per_query,
    random_accuracy,
    score_accuracy,
)

_DESCRIPTION = __doc__

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of lists of floats, (N queries, M models): router scores, e.g. P(correct).
    references: list of lists of floats, (N, M): labels in [0, 1]; NaN (float("nan")) = missing.
    best_single_index: optional int, the best single model chosen on training data. Default: the
        model best on these references (optimistic: chosen on the evaluated split).
Returns:
    routing_accuracy, oracle_accuracy, best_single_accuracy, best_single_index, gap_closed,
    random_accuracy, n_queries.
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

    def _compute(self, predictions, references, best_single_index=None):
        scores = np.asarray(predictions, dtype=np.float64)
        labels = np.asarray(references, dtype=np.float64)
        if scores.ndim != 2 or scores.shape != labels.shape:
            raise ValueError(f"predictions {scores.shape} and references {labels.shape} must both be (queries, models) with the same shape")
        preference = model_means(labels)
        index = int(np.nanargmax(preference)) if best_single_index is None else int(best_single_index)
        preference[index] = np.inf  # the best single model first; where it has no label, the next best here
        accuracy, oracle, single = score_accuracy(scores, labels), nanmean(oracle_per_query(labels)), nanmean(best_single_per_query(labels, preference))
        return {
            "routing_accuracy": accuracy,
            "oracle_accuracy": oracle,
            "best_single_accuracy": single,
            "best_single_index": index,
            "gap_closed": gap_closed(accuracy, single, oracle),
            "random_accuracy": random_accuracy(labels),
            "n_queries": len(labels),
        }
