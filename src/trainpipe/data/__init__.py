"""Data sources, fingerprints, task inference, splitting and validation."""

from trainpipe.data._sources import (
    DataSource,
    fingerprint_file,
    fingerprint_frame,
    fingerprint_source,
    read_source,
    resolve_source,
)
from trainpipe.data._split import split_indices
from trainpipe.data._task import TaskInfo, infer_task
from trainpipe.data._validation import CheckResult, ValidationReport, validate_frame

__all__ = [
    "CheckResult",
    "DataSource",
    "TaskInfo",
    "ValidationReport",
    "fingerprint_file",
    "fingerprint_frame",
    "fingerprint_source",
    "infer_task",
    "read_source",
    "resolve_source",
    "split_indices",
    "validate_frame",
]
