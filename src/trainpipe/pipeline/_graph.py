"""The step graph of one config: steps with their named artifacts, validated, ordered and sliced.

``StepGraph.for_config`` assembles it (``tune`` only with a ``tuning`` section). The CLI (``run``, ``tune`` =
``until("tune")``, ``step`` = ``only([NAME])``), ``reproduce`` (the graph without the registry's steps) and
the runner's rank policy (ranks > 0: without the rank-0 steps) all slice this object; ``trainpipe graph``
and the orchestrator exports render :meth:`StepGraph.to_dict`, the one description of the graph.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError
from trainpipe.pipeline._step import WHOLE, Step, parse_ref

if TYPE_CHECKING:
    from trainpipe.config import PipelineConfig

FORMATS = ("text", "mermaid", "json")


class StepGraph:
    """Steps in a topological order (the declared order where the inputs allow it).

    A slice (:meth:`only`, :meth:`until`, :meth:`from_`, :meth:`upstream_of`, :meth:`without`) keeps the
    whole graph it came from in ``whole``: its steps' inputs may come from steps outside the slice (they are
    read from an existing run directory), but every input must be produced by a step of the whole graph.
    """

    def __init__(self, steps: Iterable[Step], name: str = "pipeline", *, whole: StepGraph | None = None) -> None:
        self.name = name
        self.whole = whole if whole is not None else self
        given = list(steps)
        seen: set[str] = set()
        for s in given:
            if s.name in seen:
                raise ConfigError(f"step graph {name!r}: two steps are named {s.name!r}; step names must be unique.")
            seen.add(s.name)
        self.steps: list[Step] = _topological(given, name) if whole is None else given
        if whole is None:
            self._check()

    @classmethod
    def for_config(cls, config: PipelineConfig) -> StepGraph:
        """The graph for one config: the core steps, ``drift`` after ``split``, ``gate`` and ``register``
        after ``evaluate``, and ``tune`` before ``train`` (which then reads its best parameters) when the
        config has a ``tuning`` section."""
        from trainpipe.pipeline._steps_registry import DRIFT_STEP, GATE_STEP, REGISTER_STEP

        steps = list(core_steps(config))
        steps.insert(_index(steps, "split") + 1, DRIFT_STEP)
        steps += [GATE_STEP, REGISTER_STEP]
        if config.tuning is not None:
            from trainpipe.pipeline._steps_tuning import TUNED_INPUT

            at = _index(steps, "train")
            steps[at] = replace(steps[at], inputs={**steps[at].inputs, **TUNED_INPUT})
            steps.insert(at, task_tune_step(config))
        return cls(steps, config.name)

    # -- reading ----------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __contains__(self, name: object) -> bool:
        return any(s.name == name for s in self.steps)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise ConfigError(f"unknown step {name!r}; steps are {', '.join(self.names) or 'none'}.")

    def edges(self) -> list[tuple[str, str, list[str]]]:
        """``(producer, consumer, [outputs read])`` for every pair of steps of this graph."""
        inside = set(self.names)
        out: dict[tuple[str, str], list[str]] = {}
        for s in self.steps:
            for ref in s.inputs.values():
                producer, output = parse_ref(ref)
                if producer in inside:
                    out.setdefault((producer, s.name), []).append(output)
        return [(a, b, names) for (a, b), names in out.items()]

    # -- slicing ----------------------------------------------------------------------------------

    def _slice(self, keep: Iterable[str]) -> StepGraph:
        wanted = set(keep)
        return StepGraph([s for s in self.steps if s.name in wanted], self.name, whole=self.whole)

    def only(self, names: Iterable[str]) -> StepGraph:
        """These steps alone (their inputs must already be in the run directory)."""
        names = list(names)
        for n in names:
            self.step(n)
        return self._slice(names)

    def until(self, name: str) -> StepGraph:
        """Every step up to and including ``name``, in order."""
        at = self.names.index(self.step(name).name)
        return self._slice(self.names[: at + 1])

    def from_(self, name: str) -> StepGraph:
        """``name`` and every step after it, in order."""
        at = self.names.index(self.step(name).name)
        return self._slice(self.names[at:])

    def upstream_of(self, name: str) -> StepGraph:
        """``name`` and the steps it reads from, directly or not."""
        self.step(name)
        keep, todo = {name}, [name]
        while todo:
            for producer in self.step(todo.pop()).upstream:
                if producer in self and producer not in keep:
                    keep.add(producer)
                    todo.append(producer)
        return self._slice(keep)

    def without(self, drop: Callable[[Step], bool]) -> StepGraph:
        """The graph less the steps ``drop`` picks and every step that reads from them."""
        gone: set[str] = set()
        for s in self.steps:  # topological: producers are decided first
            if drop(s) or any(p in gone for p in s.upstream):
                gone.add(s.name)
        return self._slice(n for n in self.names if n not in gone)

    # -- rendering --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The graph as plain data: what ``trainpipe graph`` prints and the orchestrator exports render."""
        return {
            "pipeline": self.name,
            "steps": [{"name": s.name, "description": s.description, "upstream": list(s.upstream),
                       "inputs": dict(s.inputs), "outputs": list(s.outputs),
                       "flags": {k: v for k, v in s.flags().items() if v}} for s in self.steps],
            "edges": [{"from": a, "to": b, "artifacts": names} for a, b, names in self.edges()],
        }

    def render(self, fmt: str = "text") -> str:
        if fmt not in FORMATS:
            raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}.")
        data = self.to_dict()
        if fmt == "json":
            return json.dumps(data, indent=2)
        if fmt == "mermaid":
            return _mermaid(data)
        return _text(data)

    # -- checks -----------------------------------------------------------------------------------

    def _check(self) -> None:
        produced = {s.name: set(s.outputs) for s in self.steps}
        for s in self.steps:
            for local, ref in s.inputs.items():
                try:
                    producer, output = parse_ref(ref)
                except ValueError as exc:
                    raise ConfigError(f"step {s.name!r}, input {local!r}: {exc}.") from exc
                if producer not in produced:
                    raise ConfigError(
                        f"step {s.name!r} reads {ref!r} (its input {local!r}), but no step {producer!r} is in the "
                        f"graph of {self.name!r} (steps: {', '.join(self.names)}). Add the step that produces "
                        "it, or remove the input.")
                outputs = produced[producer]
                if output != WHOLE and outputs and output not in outputs:
                    raise ConfigError(
                        f"step {s.name!r} reads {ref!r} (its input {local!r}), but step {producer!r} declares no "
                        f"output {output!r} (its outputs: {', '.join(sorted(outputs))}).")


def core_steps(config: PipelineConfig) -> tuple[Step, ...]:
    """ingest .. evaluate for the config's task: the task's own (``Task.steps_module``: ranking), else the
    tabular core steps."""
    import importlib

    from trainpipe.tasks import registered_tasks, task_for

    module = task_for(config.task).steps_module if config.task in registered_tasks() else None
    if module is None:
        from trainpipe.pipeline._steps import CORE_STEPS

        return CORE_STEPS
    steps: tuple[Step, ...] = importlib.import_module(module).STEPS
    return steps


def task_tune_step(config: PipelineConfig) -> Step:
    """The ``tune`` step for the config's task: its steps module's ``TUNE_STEP`` when it has one (ranking), else
    the tabular one."""
    import importlib

    from trainpipe.tasks import registered_tasks, task_for

    module = task_for(config.task).steps_module if config.task in registered_tasks() else None
    own: Step | None = getattr(importlib.import_module(module), "TUNE_STEP", None) if module else None
    if own is not None:
        return own
    from trainpipe.pipeline._steps_tuning import TUNE_STEP

    return TUNE_STEP


def _index(steps: Sequence[Step], name: str) -> int:
    return [s.name for s in steps].index(name)


def _topological(steps: list[Step], name: str) -> list[Step]:
    """Kahn's order, taking the earliest declared ready step each time (the declared order when it is one)."""
    by_name = {s.name: s for s in steps}
    pending = {s.name: {p for p in s.upstream if p in by_name and p != s.name} for s in steps}
    selfish = [s.name for s in steps if s.name in s.upstream]
    if selfish:
        raise ConfigError(f"step graph {name!r}: step {selfish[0]!r} reads its own output.")
    order: list[Step] = []
    while pending:
        ready = [s.name for s in steps if s.name in pending and not pending[s.name]]
        if not ready:
            raise ConfigError(f"step graph {name!r}: the steps {', '.join(sorted(pending))} read each other's "
                              "outputs in a cycle.")
        order.append(by_name[ready[0]])
        del pending[ready[0]]
        for needs in pending.values():
            needs.discard(ready[0])
    return order


def _text(data: dict[str, Any]) -> str:
    lines = [f"pipeline {data['pipeline']}: {len(data['steps'])} steps"]
    for s in data["steps"]:
        flags = f"  [{', '.join(s['flags'])}]" if s["flags"] else ""
        lines.append(f"{s['name']}{flags}")
        if s["description"]:
            lines.append(f"  {s['description']}")
        for local, ref in s["inputs"].items():
            lines.append(f"  <- {local} = {ref}" if local != parse_ref(ref)[1] else f"  <- {ref}")
        for output in s["outputs"]:
            lines.append(f"  -> {output}")
    return "\n".join(lines)


def _mermaid_id(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def _mermaid(data: dict[str, Any]) -> str:
    lines = ["flowchart TD"]
    for s in data["steps"]:
        label = s["name"] + (f"<br/><i>{', '.join(s['flags'])}</i>" if s["flags"] else "")
        lines.append(f'    {_mermaid_id(s["name"])}["{label}"]')
    for e in data["edges"]:
        shown = ", ".join(e["artifacts"][:4]) + (", ..." if len(e["artifacts"]) > 4 else "")
        lines.append(f'    {_mermaid_id(e["from"])} -->|"{shown}"| {_mermaid_id(e["to"])}')
    return "\n".join(lines)


def steps_for(config: PipelineConfig) -> list[Step]:
    """The steps of :meth:`StepGraph.for_config`, in order."""
    return StepGraph.for_config(config).steps


def step_names(config: PipelineConfig | None = None) -> list[str]:
    from trainpipe.pipeline._steps import CORE_STEPS

    return [s.name for s in (steps_for(config) if config is not None else CORE_STEPS)]


__all__ = ["FORMATS", "StepGraph", "step_names", "steps_for"]
