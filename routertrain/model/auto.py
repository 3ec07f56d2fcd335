"""Register the router classes with transformers' Auto classes as soon as those are imported, without
importing torch or transformers here (``import routertrain`` stays light).

``routertrain.model.modeling`` registers ``RouterConfig``/``RouterModel`` when it is imported. This
module makes that happen on first use of transformers' Auto machinery: if
``transformers.models.auto`` is already loaded, it imports ``modeling`` at once; otherwise an import
hook imports it right after transformers finishes loading one of its ``TRIGGERS``. So, after ``import routertrain``,
``AutoModelForSequenceClassification.from_pretrained(router_folder)`` and ``pipeline(...)`` load
routers (without trust_remote_code: the classes come from the installed package).
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys

# the auto modules, and modeling_utils: when an auto module finishes loading while modeling_utils is
# still half-imported (``from transformers import BertModel`` does that), registration waits for it
TRIGGERS = ("transformers.models.auto.modeling_auto", "transformers.models.auto.configuration_auto", "transformers.modeling_utils")
REGISTERING_MODULE = "routertrain.model.modeling"


def _register() -> bool:
    """Import the module that registers the classes; False when transformers is still mid-import."""
    try:
        importlib.import_module(REGISTERING_MODULE)
    except ImportError:  # a partially initialised transformers module: the next trigger retries
        return False
    return True


class _AfterAutoImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of a trigger module so registration runs after it loads."""

    def find_spec(self, name, path=None, target=None):
        if name not in TRIGGERS:
            return None
        for finder in sys.meta_path:  # whichever finder would load it (site-packages, an editable install, ...)
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            if REGISTERING_MODULE not in sys.modules and any(t in sys.modules for t in TRIGGERS[:2]) and _register():
                uninstall()

        spec.loader.exec_module = exec_then_register
        return spec


_FINDER = _AfterAutoImport()


def uninstall() -> None:
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)


def install() -> None:
    """Register now if transformers' auto classes are loaded, else when they are."""
    if REGISTERING_MODULE in sys.modules:
        return
    if any(t in sys.modules for t in TRIGGERS) and _register():
        return
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
