"""An in-memory model registry (like ``tracking.InMemoryTracker``): for tests and notebooks.

It keeps the same rules as the MLflow one: a version and its alias are created together or not at all, a
production alias is refused when production moved since the gate looked (``ChampionMoved``), production
remembers the version it replaces as ``previous-production``, every alias move goes to the audit log, and a
run that registers the same model twice gets the same version back. Model folders are copied into a
temporary directory owned by the registry (removed with it).
"""

from __future__ import annotations

import getpass
import itertools
import shutil
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from trainpipe.registry._protocol import VersionInfo
from trainpipe.registry._registry import PREVIOUS, PRODUCTION, AliasMove, ChampionMoved, _now


@dataclass
class _Model:
    versions: dict[str, VersionInfo] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    audit: list[AliasMove] = field(default_factory=list)


class InMemoryRegistry:
    """A :class:`~trainpipe.registry.ModelRegistry` that lives in this process. ``tracker``: an
    ``InMemoryTracker`` whose run tags :meth:`run_tags` reads (lineage for the model card)."""

    def __init__(self, tracker: Any = None) -> None:
        self.tracker = tracker
        self.models: dict[str, _Model] = {}
        self._store = tempfile.TemporaryDirectory(prefix="trainpipe-registry-")
        self._logged: dict[str, tuple[str, str, Path]] = {}  # model id -> (run id, key, folder)
        self._ids = itertools.count(1)

    @property
    def uri(self) -> str:
        return "memory://registry"

    def version_by_alias(self, name: str, alias: str) -> str | None:
        model = self.models.get(name)
        return None if model is None else model.aliases.get(alias)

    def download(self, name: str, version: str, cache_root: Path) -> Path:
        from trainpipe._exceptions import ConfigError

        info = self.models[name].versions.get(str(version)) if name in self.models else None
        if info is None:
            raise ConfigError(f"model {name!r} has no version {version!r} in the in-memory registry.")
        return self._logged[info.source.rpartition("/")[2]][2]

    def log_model(self, run_id: str, folder: Path, *, name: str, key: str, model_type: str,
                  tags: Mapping[str, str]) -> tuple[str, str | None]:
        for model_id, (run, known, _) in self._logged.items():
            if run == run_id and key and known == key:
                return f"memory://models/{model_id}", model_id
        model_id = f"m-{next(self._ids)}"
        target = Path(self._store.name) / model_id
        shutil.copytree(folder, target)
        self._logged[model_id] = (run_id, key, target)
        return f"memory://models/{model_id}", model_id

    def create_version(self, *, name: str, run_id: str, source: str, alias: str | None, tags: Mapping[str, str],
                       description: str, reason: str, expected_production: str | None,
                       model_id: str | None = None) -> VersionInfo:
        model = self.models.setdefault(name, _Model())
        done = [v for v in model.versions.values() if v.run_id == run_id and v.source == source]
        if done:  # a retried register step: the same version, its alias set if it was not
            info = max(done, key=lambda v: int(v.version))
            if alias is not None and model.aliases.get(alias) != info.version:
                self._check_production(name, model, alias, expected_production)
                self._move_with_previous(name, model, alias, info.version, reason)
            return self._with_aliases(name, info.version)
        self._check_production(name, model, alias, expected_production)
        version = str(max((int(v) for v in model.versions), default=0) + 1)
        model.versions[version] = VersionInfo(name, version, source, run_id, {**tags, "trainpipe.registration":
                                                                              "complete"})
        model.descriptions[version] = description
        if alias is not None:
            self._move_with_previous(name, model, alias, version, reason)
        return self._with_aliases(name, version)

    def _check_production(self, name: str, model: _Model, alias: str | None, expected: str | None) -> None:
        current = model.aliases.get(PRODUCTION)
        if alias == PRODUCTION and current != expected:
            raise ChampionMoved(f"{name}: production is now version {current}, but the gate compared this model "
                                f"with {'version ' + expected if expected else 'no production version'}. Nothing "
                                "was registered; run the pipeline again to be gated against the current one.")

    def _move_with_previous(self, name: str, model: _Model, alias: str, version: str, reason: str) -> None:
        current = model.aliases.get(PRODUCTION)
        if alias == PRODUCTION and current is not None and current != version:
            self.set_alias(name, PREVIOUS, current, reason=f"replaced by version {version}")
        self.set_alias(name, alias, version, reason=reason)

    def _with_aliases(self, name: str, version: str) -> VersionInfo:
        model = self.models[name]
        return replace(model.versions[version], aliases=tuple(a for a, v in model.aliases.items() if v == version))

    def set_description(self, name: str, version: str, text: str) -> None:
        self.models[name].descriptions[str(version)] = text

    def description(self, name: str, version: str) -> str:
        return self.models[name].descriptions.get(str(version), "")

    def set_alias(self, name: str, alias: str, version: str | None, *, reason: str = "") -> AliasMove:
        from trainpipe._exceptions import ConfigError

        model = self.models.get(name)
        if model is None or (version is not None and str(version) not in model.versions):
            raise ConfigError(f"model {name!r} has no version {version!r} in the in-memory registry.")
        before = model.aliases.get(alias)
        if version is None:
            model.aliases.pop(alias, None)
        else:
            model.aliases[alias] = str(version)
        verdict = str(model.versions[str(version)].tags.get("gate_verdict", "")) if version is not None else ""
        move = AliasMove(_now(), alias, before, None if version is None else str(version), getpass.getuser(),
                         socket.gethostname(), reason, verdict)
        if before != move.to_version:
            model.audit.append(move)
        return move

    def history(self, name: str) -> list[AliasMove]:
        model = self.models.get(name)
        return [] if model is None else list(model.audit)

    def search_versions(self, name: str) -> list[VersionInfo]:
        model = self.models.get(name)
        return [] if model is None else [self._with_aliases(name, v) for v in model.versions]

    def run_tags(self, run_id: str) -> dict[str, str]:
        runs = getattr(self.tracker, "runs", None)
        run = runs.get(run_id) if isinstance(runs, dict) else None
        return dict(run.tags) if run is not None else {}


__all__ = ["InMemoryRegistry"]
