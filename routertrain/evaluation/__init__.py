"""Router evaluation: metrics with bootstrap intervals, reference and baseline routers, and the comparison.

- ``decision``: the one decision core: the routing rule (and its cost-aware inference variant),
  routing accuracy with micro or macro averages, best single, task prior, oracle, random.
- ``metrics``: calibration, hard queries, overlap of solved queries, the task-prior share.
- ``cost``: cost-quality curve and AIQ; APGR and CPT for two-model pools.
- ``bootstrap``: percentile intervals over test queries and paired differences.
- ``interface`` / ``routers`` / ``baselines`` / ``heads``: the router interface (``BaselineRouter``) and registry
  (``register_router``), reference routers, frozen-embedding and lexical baselines, the fine-tuned router
  and the frozen-encoder control.
- ``embeddings``: frozen-encoder query embeddings, cached on disk.
- ``compare``: ``evaluate_routers(data, routers, ...) -> dict`` and ``format_table``; the command line
  front end is ``routertrain evaluate``.
"""

__all__ = ["default_routers", "evaluate_routers", "format_table"]


def __getattr__(name: str):
    if name in __all__:  # imported on first use: the comparison loads routers (and torch) the core does not need
        from routertrain.evaluation import compare

        return getattr(compare, name)
    raise AttributeError(f"module 'routertrain.evaluation' has no attribute {name!r}")
