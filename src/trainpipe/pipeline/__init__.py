"""The step graph, its cache and the runner."""

from trainpipe.pipeline._cache import StepCache, explain_change
from trainpipe.pipeline._graph import StepGraph, step_names, steps_for
from trainpipe.pipeline._preflight import preflight
from trainpipe.pipeline._records import PipelineResult, StepRecord
from trainpipe.pipeline._runner import PipelineRunner, load_run_config, state_dir
from trainpipe.pipeline._step import Step, StepContext
from trainpipe.pipeline._steps import CORE_STEPS

__all__ = [
    "CORE_STEPS",
    "PipelineResult",
    "PipelineRunner",
    "Step",
    "StepCache",
    "StepContext",
    "StepGraph",
    "StepRecord",
    "explain_change",
    "load_run_config",
    "preflight",
    "state_dir",
    "step_names",
    "steps_for",
]
