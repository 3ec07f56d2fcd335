"""Adapters that read real benchmark result files into the canonical routing dataset.

``SOURCE_BUILDERS`` maps ``data.name`` to a builder ``DataConfig -> RoutingData``.
"""

SOURCE_BUILDERS: dict = {}
