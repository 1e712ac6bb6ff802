"""Content-addressed step cache: a step is reused only when everything its key covers is unchanged.

``<root>/<step>/<key>/`` holds the step's files and ``_manifest.json`` (sha256 of each file and the key
components). An entry whose files are missing or changed is never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainpipe._procs import pid_alive
from trainpipe.data._sources import fingerprint_file as sha256_file

MANIFEST = "_manifest.json"


def key_of(components: dict[str, Any]) -> str:
    text = json.dumps(components, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def manifest_of(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): sha256_file(p)
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != MANIFEST}


def fingerprint_of(files: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    files: dict[str, str]
    components: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.files)


class StepCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def entry_dir(self, step: str, key: str) -> Path:
        return self.root / step / key

    def lookup(self, step: str, key: str) -> tuple[CacheEntry | None, str]:
        """The entry if complete and intact, else None and why not."""
        path = self.entry_dir(step, key)
        manifest = path / MANIFEST
        if not manifest.is_file():
            return None, "no cache entry"
        try:
            data = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return None, "cache manifest unreadable"
        if not (isinstance(data, dict) and isinstance(data.get("files"), dict)
                and isinstance(data.get("components"), dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in data["files"].items())):
            return None, "cache manifest damaged"
        for rel, digest in data["files"].items():
            f = path / rel
            if not f.is_file():
                return None, f"cached artifact missing: {rel}"
            if sha256_file(f) != digest:
                return None, f"cached artifact changed: {rel}"
        return CacheEntry(path, data["files"], data["components"]), ""

    def new_tmp(self, step: str) -> Path:
        """A fresh temporary folder; leftovers of killed processes (SIGKILL, power loss) are removed first."""
        folder = self.root / step
        if folder.is_dir():
            for old in folder.glob(".tmp-*"):
                pid = old.name.split("-")[1]
                if pid.isdigit() and not pid_alive(int(pid)):
                    shutil.rmtree(old, ignore_errors=True)
        tmp = folder / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        return tmp

    def commit(self, step: str, key: str, tmp: Path, components: dict[str, Any], *,
               replace: bool = False) -> CacheEntry:
        """Seal ``tmp`` as the entry for ``key`` (atomic rename; an existing broken entry is replaced).

        An existing valid entry is kept (another process computed the same inputs first) unless ``replace``:
        a step that ran on purpose (``--force``, ``--no-cache``, or one that always runs because it reads the
        registry) must leave *its* result in the run, not an older one of the same key.
        """
        files = manifest_of(tmp)
        (tmp / MANIFEST).write_text(json.dumps({"files": files, "components": components}, indent=1, default=str))
        final = self.entry_dir(step, key)
        if final.exists():
            existing, _ = self.lookup(step, key)
            if existing is not None and not replace:  # another process sealed the same key first: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
                return existing
            trash = final.with_name(f".trash-{uuid.uuid4().hex[:8]}")
            try:
                final.rename(trash)
                shutil.rmtree(trash, ignore_errors=True)
            except OSError:
                pass
        try:
            tmp.rename(final)
        except OSError:
            existing, _ = self.lookup(step, key)
            if existing is None:
                raise
            if replace:  # another process sealed one between our trash and rename: the run still gets ours
                return CacheEntry(tmp, files, components)
            shutil.rmtree(tmp, ignore_errors=True)
            return existing
        return CacheEntry(final, files, components)

    def last_components(self, step: str, pipeline: str) -> dict[str, Any] | None:
        path = self.root / step / f"last-{pipeline}.json"
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            return None

    def remember(self, step: str, pipeline: str, components: dict[str, Any]) -> None:
        path = self.root / step / f"last-{pipeline}.json"
        tmp = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps(components, default=str))
        tmp.replace(path)


def link_tree(src: Path, dst: Path) -> None:
    """Hard-link (or copy, across filesystems) every file of ``src`` into a fresh ``dst``."""
    if dst.exists():
        shutil.rmtree(dst)
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if p.name == MANIFEST:
            continue
        target = dst / rel
        if p.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(p, target)
        except OSError:
            shutil.copy2(p, target)
    dst.mkdir(parents=True, exist_ok=True)


def explain_change(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """Which parts of the key changed, in words: 'config changed: model.params.max_depth'."""
    if old is None:
        return "first run"
    reasons = []
    for group, label in (("config", "config changed"), ("inputs", "input changed"),
                         ("external", "data changed"), ("libraries", "library changed")):
        a, b = _flatten(old.get(group, {})), _flatten(new.get(group, {}))
        changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        changed = [k for k in changed if not any(o.startswith(k + ".") for o in changed)]
        if changed:
            shown = ", ".join(changed[:4]) + (f" (+{len(changed) - 4} more)" if len(changed) > 4 else "")
            reasons.append(f"{label}: {shown}")
    if old.get("trainpipe") != new.get("trainpipe"):
        reasons.append(f"trainpipe version changed: {old.get('trainpipe')} -> {new.get('trainpipe')}")
    return "; ".join(reasons) or "no cache entry"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        if not value and prefix:
            out[prefix] = {}
        return out
    return {prefix: json.dumps(value, sort_keys=True, default=str)}
