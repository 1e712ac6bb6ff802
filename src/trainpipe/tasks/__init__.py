"""Learning tasks: each owns its label encoding, the columns ``predict`` returns, its default metrics and their
direction, and the champion comparison. ``task_for(name)`` resolves a task name; ``register_task`` adds one."""

from trainpipe.tasks._base import Prediction, Task
from trainpipe.tasks._classification import BinaryTask, ClassificationTask, MulticlassTask
from trainpipe.tasks._info import TaskInfo
from trainpipe.tasks._ranking import RankingTask
from trainpipe.tasks._registry import register_task, registered_tasks, task_for
from trainpipe.tasks._regression import RegressionTask

__all__ = [
    "BinaryTask",
    "ClassificationTask",
    "MulticlassTask",
    "Prediction",
    "RankingTask",
    "RegressionTask",
    "Task",
    "TaskInfo",
    "register_task",
    "registered_tasks",
    "task_for",
]
