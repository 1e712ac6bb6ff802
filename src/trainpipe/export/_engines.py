"""The orchestrators' own Python: Airflow and kfp each live in a virtual environment of their own (Airflow
would downgrade fastapi here, kfp pins protobuf<7 and an old requests), so trainpipe runs their parsers and
compiler as a subprocess of that interpreter.

Where it is found, first match wins: the environment variable (``TRAINPIPE_AIRFLOW_PYTHON``,
``TRAINPIPE_KFP_PYTHON``), then ``.venv-airflow/bin/python`` / ``.venv-kfp/bin/python`` in the current
directory, then in the trainpipe checkout (``make .venv-airflow/.installed`` / ``make .venv-kfp/.installed``
create them there).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from trainpipe._exceptions import ConfigError

ENGINES = {
    "airflow": ("TRAINPIPE_AIRFLOW_PYTHON", ".venv-airflow", "airflow.dag_processing.dagbag",
                "apache-airflow apache-airflow-providers-docker apache-airflow-providers-cncf-kubernetes"),
    "kfp": ("TRAINPIPE_KFP_PYTHON", ".venv-kfp", "kfp.compiler", "kfp==2.17.0 kfp-kubernetes"),
}
_SCRIPTS = Path(__file__).with_name("scripts")


def _checkout() -> Path:
    return Path(__file__).resolve().parents[3]


def engine_python(kind: str) -> Path:
    """The interpreter that can import the orchestrator's SDK; ConfigError (exit 2) naming how to get one."""
    env, venv, module, packages = ENGINES[kind]
    given = os.environ.get(env)
    candidates = [Path(given)] if given else [Path.cwd() / venv / "bin" / "python",
                                              _checkout() / venv / "bin" / "python"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    if given:
        raise ConfigError(f"{env}={given}: no Python interpreter there. Point it at the python of a virtual "
                          f"environment with {packages} installed.")
    raise ConfigError(
        f"{kind} runs in its own virtual environment, and none was found ({', '.join(str(c) for c in candidates)}). "
        f"Create it with `make {venv}/.installed` in the trainpipe checkout (it installs {packages}), or set "
        f"{env} to the python of an environment that can import {module}.")


def run_script(kind: str, script: str, *args: str, timeout: float = 600.0,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``scripts/<script>`` (or a script at an absolute path) with the engine's interpreter; its last
    stdout line is a JSON object."""
    python = engine_python(kind)
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PYTHONPATH", None)  # trainpipe's own environment must not leak into the engine's
    try:
        done = subprocess.run([str(python), str(_SCRIPTS / script), *args], capture_output=True, text=True,
                              timeout=timeout, env=full_env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"{kind}: {script} did not finish in {timeout:.0f} s ({python}).") from exc
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip()[-3000:]
        raise ConfigError(f"{kind}: {script} failed with exit code {done.returncode} ({python}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


__all__ = ["ENGINES", "engine_python", "run_script"]
