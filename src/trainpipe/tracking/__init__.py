"""Experiment tracking behind the Tracker Protocol: MLflow (real) and an in-memory fake."""

from trainpipe.tracking._lineage import git_state, library_versions, lineage_tags
from trainpipe.tracking._memory import InMemoryTracker, MemoryRun
from trainpipe.tracking._mlflow import MlflowTracker, default_tracking_uri, resolve_tracking_uri
from trainpipe.tracking._protocol import Tracker

__all__ = [
    "InMemoryTracker",
    "MemoryRun",
    "MlflowTracker",
    "Tracker",
    "default_tracking_uri",
    "git_state",
    "library_versions",
    "lineage_tags",
    "resolve_tracking_uri",
]
