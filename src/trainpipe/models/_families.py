"""The registry of model families: the entry-point group ``trainpipe.model_families``, read once, lazily.

Built-in and third-party families are declared the same way, as entry points of their distribution
(trainpipe's own in ``pyproject.toml``: ``xgboost``, ``lightgbm``, ``torch_mlp``, ``sklearn``). An entry point
whose value is a trainpipe module resolves to the built-in table below instead of being imported by name, so
the copy of this module bundled inside a registered model (see ``registry/_package.py``) finds its own
copies, and an editable install whose metadata predates the entry points (it re-reads them only when
reinstalled) still has every built-in family.

A third-party family is trusted because it is an installed package (README, "Security model"); nothing
named in a config is imported: ``model.type`` only selects among the families installed here.

Nothing is read at ``import trainpipe``: the group is scanned on the first question about a family, and a
family module is imported then (family modules import their model library only when a model is built).
"""

from __future__ import annotations

import contextlib
import difflib
import threading
from collections.abc import Iterator
from typing import Any

from trainpipe._exceptions import ConfigError
from trainpipe.models._family import ModelFamily

GROUP = "trainpipe.model_families"
# entry-point names of the built-in families, in the order they are asked
BUILTIN_ENTRIES = ("xgboost", "lightgbm", "torch_mlp", "two_tower", "text_encoder", "sklearn", "ensemble")
PLANNED_TYPES: dict[str, str] = {}

_lock = threading.Lock()
_found: list[ModelFamily] | None = None
_broken: dict[str, str] = {}  # entry point -> why it could not be loaded
_added: list[ModelFamily] = []  # register_family(): in this process only


def _builtin(entry: str) -> ModelFamily:
    """The built-in family of an entry-point name, by a plain import (the bundled copy imports its own)."""
    if entry == "xgboost":
        from trainpipe.models._xgboost import FAMILY as xgboost_family

        return xgboost_family
    if entry == "lightgbm":
        from trainpipe.models._lightgbm import FAMILY as lightgbm_family

        return lightgbm_family
    if entry == "torch_mlp":
        from trainpipe.models._torch_mlp import FAMILY as torch_family

        return torch_family
    if entry == "two_tower":
        from trainpipe.models._two_tower import FAMILY as two_tower_family

        return two_tower_family
    if entry == "text_encoder":
        from trainpipe.models._text_encoder import FAMILY as text_encoder_family

        return text_encoder_family
    if entry == "ensemble":  # tuning.ensemble's weighted ensemble of fitted members of the other families
        from trainpipe.models._ensemble import FAMILY as ensemble_family

        return ensemble_family
    from trainpipe.models._sklearn import FAMILY as sklearn_family

    return sklearn_family


def _is_family(obj: Any) -> bool:
    return all(hasattr(obj, a) for a in ("name", "names", "adapter", "answers")) and isinstance(obj.names, tuple)


def _discover() -> list[ModelFamily]:
    from importlib import metadata

    found = [_builtin(e) for e in BUILTIN_ENTRIES]
    try:
        entries = sorted(metadata.entry_points(group=GROUP), key=lambda ep: ep.name)
    except Exception as exc:  # damaged metadata of some distribution: the built-ins still work
        _broken["*"] = f"the entry points could not be read ({type(exc).__name__}: {exc})"
        return found
    for ep in entries:
        if ep.value.split(":")[0].split(".")[0] == "trainpipe" or ep.name in BUILTIN_ENTRIES:
            continue  # a built-in: resolved through _builtin above (metadata may be stale or absent)
        try:
            obj = ep.load()
        except Exception as exc:  # a third-party package that fails to import must not break the others
            _broken[ep.name] = f"{ep.value} failed to import ({type(exc).__name__}: {exc})"
            continue
        if not _is_family(obj):
            _broken[ep.name] = f"{ep.value} is a {type(obj).__name__}, not a trainpipe.models.ModelFamily"
            continue
        found.append(obj)
    return found


def families() -> tuple[ModelFamily, ...]:
    """Every family installed here: the built-ins, the entry points' (by name), then ``register_family``'s."""
    global _found
    with _lock:
        if _found is None:
            _found = _discover()
        return (*_found, *_added)


def register_family(family: ModelFamily) -> None:
    """Add ``family`` for this process (a notebook, a test); installed packages use the entry point."""
    if not _is_family(family):
        raise TypeError(f"register_family takes a ModelFamily, got {type(family).__name__}")
    with _lock:
        _added.append(family)


def unregister_family(family: ModelFamily) -> None:
    with _lock:
        if family in _added:
            _added.remove(family)


@contextlib.contextmanager
def registered(family: ModelFamily) -> Iterator[ModelFamily]:
    """``family`` registered for the ``with`` block (unless it is installed already)."""
    added = family not in families()
    if added:
        register_family(family)
    try:
        yield family
    finally:
        if added:
            unregister_family(family)


def model_types() -> list[str]:
    """The exact ``model.type`` names of every installed family (the class-path families not included)."""
    return [n for f in families() for n in f.names]


def family_for(model_type: str) -> ModelFamily:
    """The family ``model_type`` names; a ConfigError (exit 2) with a did-you-mean when none does."""
    every = families()
    for family in every:
        if family.answers(model_type):
            return family
    if model_type in PLANNED_TYPES:
        raise ConfigError(
            f"model.type: {model_type!r} ({PLANNED_TYPES[model_type]}) is not available in this version. "
            f"Use one of {', '.join(model_types())} or a scikit-learn class path."
        )
    # families that claim more than their names (a class path): third-party ones are asked first
    for family in sorted(every, key=lambda f: f in _builtin_families()):
        if family.claims is not None and family.claims(model_type):
            return family
    names = model_types()
    close = difflib.get_close_matches(model_type, [*names, *PLANNED_TYPES], n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    broken = "".join(f" (The installed family {name!r} could not be loaded: {why}.)" for name, why in
                     sorted(_broken.items()))
    raise ConfigError(
        f"model.type: unknown model type {model_type!r}.{hint} Expected {', '.join(names)}, or a "
        f"scikit-learn classifier or regressor such as sklearn.linear_model.LogisticRegression.{broken}"
    )


def _builtin_families() -> list[ModelFamily]:
    return [_builtin(e) for e in BUILTIN_ENTRIES]


def family_named(name: str) -> ModelFamily | None:
    """The family recorded as ``name`` in a model's ``spec.json`` (``ModelFamily.name``), if installed."""
    return next((f for f in families() if f.name == name), None)
