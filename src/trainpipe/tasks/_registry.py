"""The task registry: one name -> one :class:`~trainpipe.tasks.Task` object.

The built-in tasks are registered here; another one (ranking) is added with :func:`register_task`.
"""

from __future__ import annotations

import difflib

from trainpipe._exceptions import ConfigError
from trainpipe.tasks._base import Task
from trainpipe.tasks._classification import BinaryTask, MulticlassTask
from trainpipe.tasks._ranking import RankingTask
from trainpipe.tasks._regression import RegressionTask

_TASKS: dict[str, Task] = {t.name: t for t in (BinaryTask(), MulticlassTask(), RegressionTask(), RankingTask())}


def register_task(task: Task, *, replace: bool = False) -> Task:
    """Make ``task`` answer to ``task.name``; a name already taken needs ``replace=True``."""
    if not isinstance(task, Task) or not task.name:
        raise TypeError(f"register_task: expected a Task instance with a name, got {task!r}")
    if task.name in _TASKS and not replace and _TASKS[task.name] is not task:
        raise ValueError(f"register_task: a task named {task.name!r} is already registered "
                         f"({_TASKS[task.name]!r}); pass replace=True to replace it")
    _TASKS[task.name] = task
    return task


def registered_tasks() -> tuple[str, ...]:
    """The names of the registered tasks, in registration order."""
    return tuple(_TASKS)


def task_for(name: str) -> Task:
    """The :class:`Task` registered under ``name`` (``binary``, ``multiclass``, ``regression``)."""
    try:
        return _TASKS[name]
    except (KeyError, TypeError):
        pass
    close = difflib.get_close_matches(str(name), list(_TASKS), n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"task: no task named {name!r} is available; the tasks are {', '.join(_TASKS)}.{hint} "
                      "Set task to one of them (or auto).")
