"""The model registry behind a Protocol (MLflow, in-memory): pyfunc packaging, all-or-nothing registration,
aliases with an audit log, model card."""

from trainpipe.registry._card import CardInputs, render_card
from trainpipe.registry._memory import InMemoryRegistry
from trainpipe.registry._mlflow_registry import MlflowRegistry
from trainpipe.registry._predict import check_input, predict_frame
from trainpipe.registry._protocol import ModelRegistry, VersionInfo
from trainpipe.registry._registry import (
    PREVIOUS,
    PRODUCTION,
    STAGING,
    AliasMove,
    client_for,
    download_version,
    history,
    move_alias,
    promote,
    register_version,
    rollback,
    version_by_alias,
)

__all__ = [
    "PREVIOUS",
    "PRODUCTION",
    "STAGING",
    "AliasMove",
    "CardInputs",
    "InMemoryRegistry",
    "MlflowRegistry",
    "ModelRegistry",
    "VersionInfo",
    "check_input",
    "client_for",
    "download_version",
    "history",
    "move_alias",
    "predict_frame",
    "promote",
    "register_version",
    "render_card",
    "rollback",
    "version_by_alias",
]
