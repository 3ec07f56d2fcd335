"""routertrain: train LLM routers by fine-tuning pretrained encoders end to end.

``train(cfg)`` runs the training loop, ``load_config(args)`` builds a config from a recipe and
overrides, ``Router.from_pretrained(folder)`` loads a trained router for inference. After
``import routertrain``, transformers' ``AutoModelForSequenceClassification`` and ``pipeline`` load
router folders too. Importing the package does not import torch.
"""

from routertrain import model as _model  # noqa: F401  (registers the router with transformers' Auto classes when they load)
from routertrain.config import Config, ConfigError, load_config


def train(cfg: Config, on_evaluate=None) -> dict:
    """Fine-tune a router; see ``routertrain.training.loop.train``. The registries check their names
    (``data.name``, ``model.attention_kernel``) first, as the command line does."""
    from routertrain.training.registries import check_names
    from routertrain.training.loop import train as _train

    return _train(check_names(cfg), on_evaluate)


def __getattr__(name: str):
    if name == "Router":  # imported on first use: torch and transformers are slow to import
        from routertrain.hub.router import Router

        return Router
    raise AttributeError(f"module 'routertrain' has no attribute {name!r}")


__all__ = ["Config", "ConfigError", "Router", "load_config", "train"]
__version__ = "0.1.0"
