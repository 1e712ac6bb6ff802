"""What every run records about where it came from: code, environment, host, trigger."""

from __future__ import annotations

import getpass
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

from trainpipe._version import __version__

# the libraries every run uses; each model family adds its own (ModelFamily.libraries)
LIBRARIES = ("scikit-learn", "pandas", "numpy", "pandera", "mlflow", "optuna", "pyarrow", "skops")


def family_libraries() -> tuple[str, ...]:
    """The libraries the installed model families declare (their versions go into lineage)."""
    from trainpipe.models import families

    return tuple(dict.fromkeys(lib for family in families() for lib in family.libraries))


def library_versions(names: tuple[str, ...] | None = None) -> dict[str, str]:
    """Installed versions of ``names`` (default: the common libraries and every family's); absent ones left out."""
    out = {}
    for name in (*LIBRARIES, *family_libraries()) if names is None else names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_state(directory: Path) -> tuple[str, bool | None]:
    """(commit, dirty) of the repository holding ``directory``; ("unknown", None) outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory,
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return commit, bool(status.strip())


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def lineage_tags(config_dir: Path, trigger: str) -> dict[str, str]:
    commit, dirty = git_state(config_dir)
    tags = {
        "trainpipe.version": __version__,
        "git.commit": commit,
        "git.dirty": "unknown" if dirty is None else str(dirty).lower(),
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "user": _user(),
        "platform": platform.platform(),
        "trigger": trigger,
    }
    tags.update({f"lib.{k}": v for k, v in library_versions().items()})
    return tags
