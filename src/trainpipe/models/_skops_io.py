"""Save and load sklearn objects with skops (no pickle): only types from allowed modules are loaded."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trainpipe._exceptions import DataError

SAFE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")


def dump(obj: Any, path: Path) -> None:
    import skops.io as sio

    sio.dump(obj, str(path))


def load(path: Path, extra_prefixes: Iterable[str] = ()) -> Any:
    """Load ``path``; refuse when it holds a type outside ``SAFE_PREFIXES`` + ``extra_prefixes``."""
    import skops.io as sio

    prefixes = (*SAFE_PREFIXES, *extra_prefixes)
    untrusted = sio.get_untrusted_types(file=str(path))
    refused = [t for t in untrusted if not t.startswith(prefixes)]
    if refused:
        raise DataError(
            f"{path}: refusing to load types from outside {', '.join(p.rstrip('.') for p in prefixes)}: "
            f"{refused[:5]}. The file was not written by this trainpipe model, or was tampered with."
        )
    return sio.load(str(path), trusted=list(untrusted))
