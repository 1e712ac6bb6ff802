"""`import trainpipe` and `trainpipe --help` stay light: no heavy library is imported at start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "xgboost", "lightgbm", "mlflow", "sklearn", "pandas", "pandera", "matplotlib", "optuna")


def _loaded_after(code: str) -> set[str]:
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_trainpipe_is_light() -> None:
    loaded = _loaded_after("import trainpipe, trainpipe.config")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_help_is_light() -> None:
    code = ("import sys\nfrom trainpipe.cli import app\n"
            "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n")
    loaded = _loaded_after(code)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_help_lists_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "trainpipe.cli", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0
    for command in ("run", "validate", "step", "runs"):
        assert command in out.stdout


def test_skops_import_does_not_load_torch_but_leaves_it_importable() -> None:
    code = ("from trainpipe.models import _skops_io\n_skops_io._skops()\nimport sys\n"
            "hidden = 'torch' not in sys.modules\nimport torch\nprint(hidden, torch.tensor([1]).sum().item())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True 1"


def test_console_script_exits_with_the_code_its_messages_and_exit_handlers(tmp_path: Path) -> None:
    """main() ends the process with os._exit (no module teardown): the documented exit code, the whole
    error message and the exit handlers must all survive it, as with the normal shutdown."""
    marker = tmp_path / "atexit.txt"
    code = ("import atexit, pathlib, sys\n"
            f"atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text('ran'))\n"
            "sys.argv = ['trainpipe', 'run', 'missing.yaml']\n"
            "from trainpipe.cli import main\nmain()\nprint('not reached')\n")
    for fast in ("1", "0"):
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                             timeout=120, env={**os.environ, "TRAINPIPE_FAST_EXIT": fast})
        assert out.returncode == 2, (fast, out.stderr)
        assert "missing.yaml: pipeline file not found" in out.stderr
        assert "not reached" not in out.stdout
        assert marker.read_text() == "ran"
        marker.unlink()
