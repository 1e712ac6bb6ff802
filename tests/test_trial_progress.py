"""The tuning progress bar shows each trial's value and the best so far in the study's own direction."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest

from trainpipe._hooks import Hooks
from trainpipe.pipeline._steps_tuning import TrialProgress


class _Rounds(Hooks):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int, dict[str, float]]] = []

    def on_round(self, step: str, iteration: int, total: int, metrics: Mapping[str, float]) -> None:
        self.seen.append((iteration, total, dict(metrics)))


@pytest.mark.parametrize(("direction", "best"), [("maximize", [0.7, 0.7, 0.7, 0.9]),
                                                 ("minimize", [0.7, 0.5, 0.5, 0.5])])
def test_best_so_far_follows_the_direction(direction: str, best: list[float]) -> None:
    hooks = _Rounds()
    progress = TrialProgress(SimpleNamespace(hooks=hooks), 4)  # type: ignore[arg-type]
    for value in (0.7, 0.5, None, 0.9):  # None: a pruned or failed trial
        progress(SimpleNamespace(value=value), direction)
    assert [s[0] for s in hooks.seen] == [1, 2, 3, 4] and {s[1] for s in hooks.seen} == {4}
    assert [s[2]["best"] for s in hooks.seen] == best
    assert "value" not in hooks.seen[2][2]  # the pruned trial has no value of its own
    shown: Any = hooks.seen[3][2]
    assert shown["value"] == 0.9
