"""A project folder that was copied or moved: its embedded MLflow store still names the old artifact folder.

MLflow stores an experiment's artifact location, and every run's artifact URI, as absolute ``file://`` URIs
(a relative location is resolved when the experiment is created; ``mlflow-artifacts:`` needs a server). After
``cp -a A B`` a run in B would write its artifacts into A, and after ``mv A B`` (or deleting A) the models of B
no longer load. Registered versions point at ``runs:/<run id>/<path>``, so they follow their run's URI.

When the project's own store (``<project>/.trainpipe/mlflow.db``) is opened, :func:`check_moved` compares
the locations it records under ``<somewhere>/.trainpipe/mlartifacts`` with this project's
``.trainpipe/mlartifacts``. When they differ:

- the store is pointed at this folder, with a note, if that is provably safe: this folder holds every
  experiment folder the store names, every artifact folder of a run that the old folder still has (when the
  old one is gone: every finished pipeline run's), and every registered model version's files;
- otherwise it is exit 2 naming what is missing and how to fix it (copy the artifacts over, or
  ``trainpipe runs relocate --allow-missing``).

The rewrite is one SQLite transaction over ``experiments.artifact_location``, ``runs.artifact_uri`` and
``logged_models.artifact_location`` (and any ``file://`` model version source): all or nothing.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from trainpipe._exceptions import ConfigError

ARTIFACTS = "mlartifacts"
_MARK = f"/.trainpipe/{ARTIFACTS}"
_SHOWN = 5


@dataclass
class Move:
    """What pointing the store at this project's artifact folder would rewrite, and what that folder lacks."""

    db: Path
    old_root: str  # file:// URI of the artifact folder the store names
    new_root: str  # file:// URI of this project's .trainpipe/mlartifacts
    experiments: int = 0
    runs: int = 0
    missing: list[str] = field(default_factory=list)

    @property
    def old_path(self) -> Path:
        return uri_path(self.old_root)

    @property
    def new_path(self) -> Path:
        return uri_path(self.new_root)

    @property
    def old_project(self) -> Path:
        return self.old_path.parent.parent


def uri_path(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


def project_store(uri: str, state_dir: Path) -> Path | None:
    """The SQLite file of ``uri`` when it is the embedded store of the project whose state folder is
    ``state_dir`` (``.trainpipe``), else None (a server, a database, another project's store)."""
    from trainpipe._locks import sqlite_path

    path = sqlite_path(uri)
    if not path:
        return None
    db = Path(path)
    try:
        same = db.resolve() == (state_dir / "mlflow.db").resolve()
    except OSError:
        return None
    return db if same and db.is_file() else None


def find_move(db: Path, artifact_root: Path) -> Move | None:
    """The move that would point ``db`` at ``artifact_root``, or None when it already points there."""
    new_root = artifact_root.resolve().as_uri()
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        try:
            locations = [str(r[0]) for r in con.execute("SELECT artifact_location FROM experiments")]
        except sqlite3.Error:  # no tables yet: a store MLflow has not set up
            return None
        roots = {loc[: loc.index(_MARK) + len(_MARK)] for loc in locations
                 if loc.startswith("file://") and _MARK in loc}
        roots = {r for r in roots if r != new_root and not _same_folder(r, artifact_root)}
        if not roots:
            return None
        old_root = sorted(roots)[0]
        move = Move(db, old_root, new_root)
        _survey(con, move)
        return move
    finally:
        con.close()


def _same_folder(root_uri: str, artifact_root: Path) -> bool:
    """A symlinked or otherwise aliased path to this very folder is no move."""
    old = uri_path(root_uri)
    try:
        return old.exists() and artifact_root.exists() and old.samefile(artifact_root)
    except OSError:
        return False


def _under(uri: str, root: str) -> bool:
    return uri == root or uri.startswith(root + "/")


def _moved(uri: str, move: Move) -> Path:
    return uri_path(move.new_root + uri[len(move.old_root):])


def _survey(con: sqlite3.Connection, move: Move) -> None:
    """Count what would be rewritten and list what this folder lacks."""
    old_exists = move.old_path.is_dir()
    if not move.new_path.is_dir():
        move.missing.append(str(move.new_path))
    experiments = [str(r[0]) for r in con.execute("SELECT artifact_location FROM experiments")
                   if _under(str(r[0]), move.old_root)]
    move.experiments = len(experiments)
    runs = con.execute(
        "SELECT r.run_uuid, r.artifact_uri, r.status, "
        "(SELECT t.value FROM tags t WHERE t.run_uuid = r.run_uuid AND t.key = 'trainpipe.kind') FROM runs r"
    ).fetchall()
    moved = {str(run_id): str(uri) for run_id, uri, _, _ in runs if uri and _under(str(uri), move.old_root)}
    move.runs = len(moved)
    with_runs = {uri.rsplit("/", 2)[0] for uri in moved.values()}
    for loc in experiments:
        if loc in with_runs and not _moved(loc, move).is_dir():
            move.missing.append(str(_moved(loc, move)))
    for run_id, uri, status, kind in runs:
        if str(run_id) not in moved:
            continue
        had_files = uri_path(str(uri)).is_dir() if old_exists else (kind == "pipeline" and status == "FINISHED")
        if had_files and not _moved(str(uri), move).is_dir():
            move.missing.append(str(_moved(str(uri), move)))
    try:  # MLflow 3 logged models (``models:/m-<id>`` sources): their files are under the experiment's folder
        logged = [str(r[0]) for r in con.execute("SELECT artifact_location FROM logged_models")]
    except sqlite3.Error:
        logged = []
    for loc in logged:
        if _under(loc, move.old_root) and (uri_path(loc).is_dir() or not old_exists) \
                and not _moved(loc, move).is_dir():
            move.missing.append(str(_moved(loc, move)))
    try:
        sources = con.execute("SELECT name, version, source FROM model_versions").fetchall()
    except sqlite3.Error:
        sources = []
    for name, version, source in sources:
        source = str(source or "")
        if source.startswith("runs:/"):
            run_id, _, sub = source[len("runs:/"):].partition("/")
            if run_id in moved and not (_moved(moved[run_id], move) / sub).exists():
                move.missing.append(f"{_moved(moved[run_id], move) / sub} (model {name} version {version})")
        elif _under(source, move.old_root) and not _moved(source, move).exists():
            move.missing.append(f"{_moved(source, move)} (model {name} version {version})")


def relocate(move: Move) -> None:
    """Point the store at ``move.new_root``: one transaction, all rows or none."""
    con = sqlite3.connect(str(move.db), timeout=30, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            n = len(move.old_root) + 1
            for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                                  ("logged_models", "artifact_location"), ("model_versions", "source"),
                                  ("model_versions", "storage_location")):
                if not con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                   (table,)).fetchone():
                    continue
                con.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "  # names from the fixed list above
                    f"WHERE {column} = ? OR substr({column}, 1, ?) = ?",
                    (move.new_root, n, move.old_root, n, move.old_root + "/"))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()


def describe(move: Move) -> str:
    return (f"{move.experiments} experiment(s) and {move.runs} run(s) of the MLflow store {move.db} now keep "
            f"their artifacts in {move.new_path} (they named {move.old_path}: this project was copied or moved "
            f"from {move.old_project})")


def refusal(move: Move) -> str:
    shown = "; ".join(move.missing[:_SHOWN]) + (f"; and {len(move.missing) - _SHOWN} more"
                                                if len(move.missing) > _SHOWN else "")
    source = (f"Copy them from the old folder (cp -a {move.old_path}/. {move.new_path}/) and run again: trainpipe "
              "then points the store at this folder by itself"
              if move.old_path.is_dir() else
              f"The old folder {move.old_path} is gone: restore it (or its copy) into {move.new_path} and run again")
    return (f"the MLflow store {move.db} keeps this project's artifacts in {move.old_path}, another folder: this "
            f"project was copied or moved from {move.old_project}, and runs here would write (and read models) "
            f"there. {move.new_path} lacks {len(move.missing)} of the artifact folders the store names: {shown}. "
            f"{source}; or run `trainpipe runs relocate --allow-missing` to point the store here anyway (runs "
            "whose artifacts are missing keep none).")


def check_moved(uri: str, state_dir: Path) -> str:
    """When ``uri`` is the embedded store of the project at ``state_dir`` and names another project's artifact
    folder: point it here (returns the note to show) when that is provably safe, else raise ConfigError
    (exit 2) saying what to do. "" when there is nothing to do."""
    db = project_store(uri, state_dir)
    if db is None:
        return ""
    move = find_move(db, state_dir / ARTIFACTS)
    if move is None:
        return ""
    if move.missing:
        raise ConfigError(refusal(move))
    relocate(move)
    return describe(move)


def relocate_store(uri: str, state_dir: Path, *, allow_missing: bool = False) -> str:
    """``trainpipe runs relocate``: what :func:`check_moved` does, with ``allow_missing`` to go ahead when some
    artifact folders are gone for good."""
    db = project_store(uri, state_dir)
    if db is None:
        raise ConfigError(f"runs relocate: {uri} is not this project's embedded store ({state_dir / 'mlflow.db'}); "
                          "only that store records this folder's artifact location. Run it in the project folder.")
    move = find_move(db, state_dir / ARTIFACTS)
    if move is None:
        return f"nothing to do: the MLflow store {db} already keeps its artifacts in {state_dir / ARTIFACTS}."
    if move.missing and not allow_missing:
        raise ConfigError(refusal(move).replace("or run `trainpipe runs relocate --allow-missing`",
                                                "or add --allow-missing"))
    (state_dir / ARTIFACTS).mkdir(parents=True, exist_ok=True)
    relocate(move)
    lost = f"; {len(move.missing)} artifact folder(s) it names are missing" if move.missing else ""
    return describe(move) + lost + "."


def recorded_source_dir(run_dir: Path) -> Path | None:
    """The folder a run's pipeline file was in (its relative paths, e.g. ``data.source``, start there), as
    recorded in ``source_dir.txt``, followed when the project was copied or moved.

    The file holds the absolute path at run time; ``run.json`` holds where the run directory was then. When the
    run directory now lives under another project folder (``<project>/.trainpipe/runs/<id>``) and the recorded
    folder was inside the old project, the same place inside this project is used: a copy reproduces from its
    own files, never from the original's (which may have changed, or be gone). A folder outside the project is
    used as recorded. ``None`` when nothing was recorded; a recorded folder that is nowhere is exit 2.
    """
    import json

    marker = run_dir / "source_dir.txt"
    if not marker.is_file():
        return None
    recorded = Path(marker.read_text().strip())
    here = run_dir.resolve()
    then: Path | None = None
    try:
        then = Path(json.loads((run_dir / "run.json").read_text())["run_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        then = None
    if then is not None and then != here and then.parent.name == "runs" and then.parent.parent.name == ".trainpipe" \
            and here.parent.name == "runs" and here.parent.parent.name == ".trainpipe":
        old_project, new_project = then.parent.parent.parent, here.parent.parent.parent
        try:
            inside = recorded.relative_to(old_project)
        except ValueError:
            inside = None
        if inside is not None and (new_project / inside).is_dir():
            return new_project / inside
    if recorded.is_dir():
        return recorded
    raise ConfigError(
        f"run {run_dir.name}: the folder of its pipeline file, {recorded}, recorded in {marker}, does not exist "
        "(the project was moved or copied, and that folder is not at the same place in this project either). "
        "Run from the project folder that holds the run's pipeline file and data, or write the folder that now "
        f"holds them into {marker}."
    )


__all__ = ["Move", "check_moved", "find_move", "project_store", "recorded_source_dir", "relocate",
           "relocate_store"]
