"""The Dockerfile installs trainpipe exactly as `make install` does (same constraints file, same extras), runs
as a non-root user with `trainpipe` as its entrypoint, and .dockerignore keeps environments, run state and data
out of the build context. No container engine runs on the test machines (no daemon, and no registry to pull a
base image from), so the image itself is not built here; the entrypoint is checked in a plain shell."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()


def _instructions(name: str) -> list[str]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)  # continuation lines joined
    return [line.split(None, 1)[1] for line in text.splitlines() if line.split(None, 1)[:1] == [name]]


def _extras(spec: str) -> set[str]:
    found = re.search(r'"?\.\[([a-z0-9_,\- ]+)\]"?', spec)
    assert found, spec
    return {e.strip() for e in found.group(1).split(",")}


def _make_install_lines() -> list[str]:
    """The pip installs of `make install` (the $(VENV)/.installed recipe), less pip's own upgrade."""
    recipe = re.search(r"^\$\(VENV\)/\.installed:.*?\n((?:\t.*\n)+)", MAKEFILE, re.M)
    assert recipe, "the $(VENV)/.installed recipe moved: update this test and the Dockerfile together"
    lines = [line.split("#", 1)[0].strip() for line in recipe.group(1).splitlines()]
    return [line.removeprefix("$(PIP_INSTALL)").strip() for line in lines
            if line.startswith("$(PIP_INSTALL)") and "--upgrade pip" not in line]


def test_the_image_installs_with_the_pins_and_extras_of_make_install() -> None:
    pip_install = re.search(r"^PIP_INSTALL\s*:=\s*(.+)$", MAKEFILE, re.M)
    assert pip_install and "-c constraints.txt" in pip_install.group(1)
    wanted = _make_install_lines()
    assert any(".[all]" in w for w in wanted), wanted
    installs = [r.split("pip install", 1)[1].strip() for r in _instructions("RUN") if "pip install" in r]
    assert all(i.startswith("-c constraints.txt ") for i in installs), installs
    docker = [i.removeprefix("-c constraints.txt ").replace('"', "") for i in installs]
    # the same packages, extras and flags, in the same order (the editable -e is for a checkout only)
    assert docker == [w.removeprefix("-e ").replace('"', "") for w in wanted]
    assert _extras(installs[0]) == _extras(wanted[0])
    copied = " ".join(_instructions("COPY"))
    assert "constraints.txt" in copied and "pyproject.toml" in copied and "src" in copied


def test_multi_stage_slim_non_root_with_a_cuda_base_argument_and_the_trainpipe_entrypoint() -> None:
    stages = _instructions("FROM")
    assert stages == ["${BASE_IMAGE} AS build", "${BASE_IMAGE} AS runtime"]
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim", DOCKERFILE, re.M)
    assert "CUDA" in DOCKERFILE and "--build-arg BASE_IMAGE=" in DOCKERFILE
    (user,) = _instructions("USER")
    assert user not in ("root", "0") and f"--uid {user}" in DOCKERFILE
    assert _instructions("ENTRYPOINT") == ['["trainpipe"]']
    assert "COPY --from=build /opt/trainpipe /opt/trainpipe" in DOCKERFILE
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["trainpipe"] == "trainpipe.cli:main"


def test_dockerignore_keeps_environments_run_state_and_data_out() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".venv-*", ".trainpipe", "**/.trainpipe", "data", "**/*.csv", "**/*.parquet"} <= ignored
    assert not ignored & {"src", "pyproject.toml", "constraints.txt", "README.md"}


def test_the_entrypoint_works_in_a_plain_shell(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    done = subprocess.run(["sh", "-c", "trainpipe --version && trainpipe export --help"], cwd=tmp_path,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert re.match(r"trainpipe \d+\.\d+", done.stdout) and "airflow" in done.stdout and "kubeflow" in done.stdout
