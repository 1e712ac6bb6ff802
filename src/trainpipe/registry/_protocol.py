"""The registry seam: what drift, the gate, register and the ``models`` commands need from a model registry.

:class:`~trainpipe.registry.MlflowRegistry` is the real one (the MLflow Model Registry of the tracking store);
:class:`~trainpipe.registry.InMemoryRegistry` keeps everything in the process, for tests and notebooks. With
either, drift, the champion comparison and registration really run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from trainpipe.registry._registry import AliasMove


@dataclass(frozen=True)
class VersionInfo:
    """One registered version, whatever the backend."""

    name: str
    version: str
    source: str
    run_id: str
    tags: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


@runtime_checkable
class ModelRegistry(Protocol):
    """Versions of named models, with aliases (staging, production, previous-production) and an audit log."""

    @property
    def uri(self) -> str:
        """Where the registry lives, for messages (no credentials)."""
        ...

    def version_by_alias(self, name: str, alias: str) -> str | None:
        """The version ``alias`` points at, or None (no such model or alias)."""
        ...

    def download(self, name: str, version: str, cache_root: Path) -> Path:
        """The registered pyfunc folder of one version on local disk (cached in ``cache_root``)."""
        ...

    def log_model(self, run_id: str, folder: Path, *, name: str, key: str, model_type: str,
                  tags: Mapping[str, str]) -> tuple[str, str | None]:
        """Store the pyfunc ``folder`` as a model of run ``run_id``; ``(source, model_id)``. A model of that run
        with the same ``key`` is reused (a retried register step logs nothing new)."""
        ...

    def create_version(self, *, name: str, run_id: str, source: str, alias: str | None, tags: Mapping[str, str],
                       description: str, reason: str, expected_production: str | None,
                       model_id: str | None = None) -> VersionInfo:
        """Create a version and point ``alias`` at it, all or nothing; a production alias is refused
        (``ChampionMoved``) when production is no longer ``expected_production``. A run that already
        registered ``source`` gets that version back."""
        ...

    def set_description(self, name: str, version: str, text: str) -> None: ...

    def set_alias(self, name: str, alias: str, version: str | None, *, reason: str = "") -> AliasMove:
        """Move ``alias`` (None removes it) and append the move to the audit log."""
        ...

    def history(self, name: str) -> list[AliasMove]:
        """Every alias move of model ``name``, oldest first."""
        ...

    def search_versions(self, name: str) -> list[VersionInfo]:
        """Every version of model ``name`` (none when there is no such model)."""
        ...

    def run_tags(self, run_id: str) -> dict[str, str]:
        """The tags of tracking run ``run_id`` (lineage for the model card); empty when unknown."""
        ...


__all__ = ["ModelRegistry", "VersionInfo"]
