"""Garbage collection around a command's start-up.

Opening the tracking store imports skops, scikit-learn, SciPy and MLflow: about a million objects, all of which
stay alive for the whole process. CPython runs a full (generation 2) collection each time the long-lived objects
grow by a quarter, so those imports trigger six or seven full collections that each scan everything imported so
far and find almost nothing (0.1-0.2 s each; 0.9 s of a ``trainpipe run`` measured under load). The command
turns collection off while it imports and opens the store, then moves the survivors to the permanent generation
(``gc.freeze``): later full collections, during the steps, scan only what the run allocates itself.

Only the CLI does this (it owns its process, which ends after the run). Frozen objects are still freed by
reference counting; only a reference cycle among them would outlive the command, which ends anyway; the
command unfreezes them when its work is done (:func:`thaw`), for callers that run it in their own process.
"""

from __future__ import annotations

import contextlib
import gc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextlib.contextmanager
def start_up_without_collection() -> Iterator[None]:
    """Cyclic garbage collection off inside the block; on leaving it, everything alive is frozen
    (``gc.freeze``) and collection is on again if it was on before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def thaw() -> None:
    """Undo the freeze once the command's work is done (``gc.unfreeze``): in its own process it changes nothing
    that matters; in a caller's process (a test invoking the command in-process, many times) the objects frozen
    at start-up are collectable again, so cycles among them that die later do not accumulate."""
    gc.unfreeze()


__all__ = ["start_up_without_collection", "thaw"]
