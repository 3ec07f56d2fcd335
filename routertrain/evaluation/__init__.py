"""Router evaluation: metrics with bootstrap intervals, reference and baseline routers, and the comparison.

- ``metrics``: accuracy with ties and missing labels, random accuracy, calibration, hard queries,
  overlap of solved queries, the task-prior share (on top of ``routertrain.evaluation.decision``).
- ``cost``: cost-quality curve and AIQ; APGR and CPT for two-model pools.
- ``bootstrap``: percentile intervals over test queries and paired differences.
- ``interface`` / ``routers`` / ``baselines`` / ``heads``: the router interface (``BaselineRouter``), reference routers, frozen-embedding
  and lexical baselines, the fine-tuned router and the frozen-encoder control.
- ``embeddings``: frozen-encoder query embeddings, cached on disk.
- ``compare``: ``evaluate_routers(data, routers, ...) -> dict`` and ``format_table``; the command line
  front end is ``routertrain evaluate``.
"""

from routertrain.evaluation.compare import DEFAULT_ROUTERS, evaluate_routers, format_table

__all__ = ["DEFAULT_ROUTERS", "evaluate_routers", "format_table"]
