"""The MLflow Model Registry behind :class:`~trainpipe.registry.ModelRegistry` (the functions of
``registry._registry`` on one client)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe.registry._protocol import VersionInfo

if TYPE_CHECKING:
    from trainpipe.registry._registry import AliasMove

MODEL_KEY_TAG = "trainpipe.model_key"  # the train step's output fingerprint, on the logged model


class MlflowRegistry:
    """``client``: an ``MlflowClient`` (or the journaled tracker's guarded one); ``connection_uri``: the store's
    URI as given (credentials included: for connecting, never shown)."""

    def __init__(self, client: Any, connection_uri: str) -> None:
        self.client = client
        self.connection_uri = connection_uri

    @classmethod
    def for_tracker(cls, tracker: Any) -> MlflowRegistry | None:
        """The registry of an MLflow tracker's store (None for a tracker without one)."""
        uri = getattr(tracker, "connection_uri", None) if tracker is not None else None
        client = getattr(tracker, "client", None) if uri else None
        return cls(client, str(uri)) if client is not None else None

    @classmethod
    def for_uri(cls, uri: str) -> MlflowRegistry:
        from trainpipe.registry._registry import client_for

        return cls(client_for(uri), uri)

    @property
    def uri(self) -> str:
        from trainpipe.config import redact_uri

        return redact_uri(self.connection_uri)

    def version_by_alias(self, name: str, alias: str) -> str | None:
        from trainpipe.registry._registry import version_by_alias

        mv = version_by_alias(self.client, name, alias)
        return None if mv is None else str(mv.version)

    def download(self, name: str, version: str, cache_root: Path) -> Path:
        from trainpipe.registry._registry import download_version

        return download_version(self.client, self.connection_uri, name, version, cache_root)

    def log_model(self, run_id: str, folder: Path, *, name: str, key: str, model_type: str,
                  tags: Mapping[str, str]) -> tuple[str, str | None]:
        """The folder as an MLflow logged model of the run (``models:/m-<id>``: the run's Models column, the
        version's Source), reused when this run already logged this model."""
        from mlflow.entities import LoggedModelOutput

        client = self.client
        run = client.get_run(run_id)
        for output in run.outputs.model_outputs if run.outputs is not None else []:
            found = client.get_logged_model(output.model_id)
            if key and found.tags.get(MODEL_KEY_TAG) == key and str(found.status).endswith("READY"):
                return f"models:/{found.model_id}", str(found.model_id)
        logged = client.create_logged_model(run.info.experiment_id, name=name, source_run_id=run_id,
                                            tags={MODEL_KEY_TAG: key, **tags}, model_type=model_type)
        try:
            client.log_model_artifacts(logged.model_id, str(folder))
        except BaseException:
            client.finalize_logged_model(logged.model_id, "FAILED")
            raise
        client.finalize_logged_model(logged.model_id, "READY")
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        return f"models:/{logged.model_id}", str(logged.model_id)

    def create_version(self, *, name: str, run_id: str, source: str, alias: str | None, tags: Mapping[str, str],
                       description: str, reason: str, expected_production: str | None,
                       model_id: str | None = None) -> VersionInfo:
        from trainpipe.registry._registry import register_version

        mv = register_version(self.client, name=name, run_id=run_id, source=source, model_id=model_id,
                              alias=alias, tags=dict(tags), description=description, reason=reason,
                              expected_production=expected_production)
        return _info(mv)

    def set_description(self, name: str, version: str, text: str) -> None:
        self.client.update_model_version(name, str(version), description=text[:4900])

    def set_alias(self, name: str, alias: str, version: str | None, *, reason: str = "") -> AliasMove:
        from trainpipe.registry._registry import move_alias, serialised

        moved: AliasMove = serialised(move_alias)(self.client, name, alias, version, reason=reason)
        return moved

    def history(self, name: str) -> list[AliasMove]:
        from trainpipe.registry._registry import history

        return history(self.client, name)

    def search_versions(self, name: str) -> list[VersionInfo]:
        from trainpipe.registry._filters import search_model_versions

        return [_info(v) for v in search_model_versions(self.client, name)]

    def run_tags(self, run_id: str) -> dict[str, str]:
        return dict(self.client.get_run(run_id).data.tags)


def _info(mv: Any) -> VersionInfo:
    return VersionInfo(str(mv.name), str(mv.version), str(mv.source or ""), str(mv.run_id or ""),
                       dict(mv.tags or {}), tuple(getattr(mv, "aliases", ()) or ()))


__all__ = ["MODEL_KEY_TAG", "MlflowRegistry"]
