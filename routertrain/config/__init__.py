"""The run configuration: one typed schema (``schema``), recipes merged with ``key=value`` overrides."""

from routertrain.config.schema import (
    Config,
    ConfigError,
    available_data_recipes,
    available_recipes,
    did_you_mean,
    flatten,
    headline_average,
    load_config,
    to_dict,
    to_yaml,
    valid_keys,
)

__all__ = ["Config", "ConfigError", "available_data_recipes", "available_recipes", "did_you_mean", "flatten", "headline_average", "load_config", "to_dict", "to_yaml", "valid_keys"]
