"""Secrets never reach a console, a file, a tag, a param or an artifact (issue 18, finding 2).

One pass (``trainpipe.config._secrets.scrub``) masks credentials in URIs, the values of secret-named
environment variables and known token formats; the CLI, run.json, the run directory and the MLflow tracker
all go through it.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer

from tests.conftest import make_frame, write_pipeline
from trainpipe._exceptions import ConfigError
from trainpipe.config import load_config
from trainpipe.config._secrets import (
    REDACTED,
    env_placeholders,
    redact,
    scrub,
    scrub_strings,
    write_private_text,
)
from trainpipe.pipeline import PipelineRunner
from trainpipe.pipeline._records import PipelineResult, StepRecord
from trainpipe.pipeline._step import Step, StepContext

URI = "http://user:tok3n@127.0.0.1:9/"
SECRET = "sk-live-abcdef123456"

# -- the function ------------------------------------------------------------------------------------------

TOKENS = {
    "github classic": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "github oauth": "gho_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2",
    "github fine-grained": "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH",
    "aws access key id": "AKIA" + "IOSFODNN7EXAMPLE",
    "aws session key id": "ASIA" + "Y34FZKBOKMUTVV7A",
    "slack bot": "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "slack user": "xoxp-" + "123456789012-123456789012-123456789012-abcdef0123456789abcdef0123456789",
    "openai style": "sk-" + "proj-Abc123Def456Ghi789Jkl012",
    "plain sk": "sk-" + "live-abcdef123456",
    "stripe": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "google api key": "AIza" + "SyD-abcdefghijklmnopqrstuvwxyz0123456",
    "jwt": ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0"
            + ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
}


@pytest.mark.parametrize("token", list(TOKENS.values()), ids=list(TOKENS))
def test_every_known_token_format_is_masked(token: str) -> None:
    for text in (token, f"failed with {token}.", f"'{token}'", f"value={token}&x=1"):
        shown = scrub(text)
        assert token not in shown, shown
        assert REDACTED in shown


@pytest.mark.parametrize(("text", "expected"), [
    ("Authorization: Bearer abc.def-ghi_jkl123", "Authorization: Bearer ***"),
    ("Basic dXNlcjpwYXNzd29yZA==", "Basic ***"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----", "***"),
    ("export MY_API_KEY=hunter2hunter2 then", "export MY_API_KEY=*** then"),
    (URI, "http://user:***@127.0.0.1:9/"),
    ("https://tok3nvalue@mlflow.example/api", "https://***@mlflow.example/api"),
    ("https://h/x?token=abc123&page=2", "https://h/x?token=***&page=2"),
    ("https://h/x?api_key=abc123", "https://h/x?api_key=***"),
    ("postgresql+psycopg://bob:p%40ss@db:5432/ml", "postgresql+psycopg://bob:***@db:5432/ml"),
])
def test_credentials_in_headers_keys_and_uris_are_masked(text: str, expected: str) -> None:
    assert scrub(text) == expected


@pytest.mark.parametrize("text", [
    "sqlite:////tmp/x/.trainpipe/mlflow.db", "file:///tmp/mlartifacts/1", "https://github.com/org/repo@v1",
    "model.params.max_depth: expected an integer >= 1, got 'six'", "task-abcdefghijklmnopqrstuvwxyz",
    "trainpipe.cache_key", "0f3a9c" * 10, "token_ttl: 5", "git@github.com:org/repo.git",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert scrub(text) == text


def test_values_of_secret_named_environment_variables_are_masked_anywhere(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "plainvalue42")
    monkeypatch.setenv("KEYBOARD", "us")  # too short to be masked everywhere
    monkeypatch.setenv("HOME_DIR", "plainvalue42-not-secret-named")
    assert scrub("got plainvalue42 back") == "got *** back"
    assert scrub("layout us") == "layout us"
    # a secret the config interpolated is masked at any length the loader collected
    assert scrub("pw is abcd", secrets={"abcd"}) == "pw is ***"
    assert redact({"description": "x plainvalue42 y"}) == {"description": "x *** y"}
    # records keep keys such as a step's cache `key`; only strings are scrubbed
    assert scrub_strings({"key": "0f3a", "reason": f"ConnectionError: {URI}"}) == {
        "key": "0f3a", "reason": "ConnectionError: http://user:***@127.0.0.1:9/"}


def test_saved_config_holds_placeholders_and_loads_back_with_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainpipe.pipeline import load_run_config

    monkeypatch.setenv("API_KEY", SECRET)
    placeholders = env_placeholders({"description": f"key {SECRET}", "n": 3}, {SECRET})
    assert placeholders == {"description": "key ${API_KEY}", "n": 3}
    assert env_placeholders({"a": "s3cr3t!"}, {"s3cr3t!"}, environ={}) == {"a": REDACTED}
    make_frame(60).to_csv(tmp_path / "data.csv", index=False)
    path = write_pipeline(tmp_path, 'name: p\ndescription: "${API_KEY}"\ndata: {source: data.csv, target: label}\n'
                                    "model: {type: sklearn.linear_model.LogisticRegression}\n")
    loaded = load_config(path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    PipelineRunner(loaded, workdir=tmp_path, steps=[])._write_config(run_dir)
    for name in ("config.yaml", "config.redacted.yaml"):
        assert SECRET not in (run_dir / name).read_text()
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600, name
    # `trainpipe step --run-dir` reads the same resolved config back from the same environment
    assert load_run_config(run_dir).config.description == SECRET


def test_write_private_text_is_atomic_and_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    target.write_text("old")
    target.chmod(0o644)
    write_private_text(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


# -- the CLI's messages ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("exc", "code"), [
    (ConfigError(f"tracking server unreachable at {URI} (Connection refused)"), 2),
    (RuntimeError(f"HTTPConnectionPool: Max retries exceeded with url {URI}api/2.0 token={SECRET}"), 1),
    (PermissionError(13, "Permission denied", f"{URI}x"), 2),
])
@pytest.mark.parametrize("debug", [False, True])
def test_cli_prints_errors_and_tracebacks_redacted(exc: Exception, code: int, debug: bool,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from trainpipe.cli import _guard

    def fail() -> None:
        raise exc

    with pytest.raises(typer.Exit) as info:
        _guard(debug, fail)
    assert info.value.exit_code == code
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert "tok3n" not in shown and SECRET not in shown, shown
    assert "user:***@127.0.0.1:9" in shown


# -- run.json, the run directory and the tracking store ---------------------------------------------------

def test_run_json_is_owner_only_and_records_errors_redacted(tmp_path: Path) -> None:
    result = PipelineResult("r1", tmp_path, "p", "failed", [StepRecord("boom", "failed", f"X: {URI}", key="k1")],
                            tracking_uri=URI, error=f"ConfigError: cannot reach {URI}")
    result.write(tmp_path / "run.json")
    text = (tmp_path / "run.json").read_text()
    assert "tok3n" not in text and "user:***@127.0.0.1:9" in text
    assert stat.S_IMODE((tmp_path / "run.json").stat().st_mode) == 0o600
    back = PipelineResult.read(tmp_path / "run.json")
    assert back.run_dir == tmp_path and back.steps[0].key == "k1"


def test_a_failing_step_s_error_is_redacted_in_run_json_and_mlflow_tags(workdir: Path) -> None:
    from mlflow import MlflowClient

    from trainpipe.tracking import MlflowTracker

    make_frame(60).to_csv(workdir / "data.csv", index=False)
    path = write_pipeline(workdir, "name: leak\ndata: {source: data.csv, target: label}\n"
                                   "model: {type: sklearn.linear_model.LogisticRegression}\n")

    def boom(ctx: StepContext) -> None:
        raise ConfigError(f"tracking server unreachable at {URI}: connection refused")

    uri = f"sqlite:///{workdir}/.trainpipe/mlflow.db"
    tracker = MlflowTracker(uri, "leak", workdir / ".trainpipe" / "mlartifacts")
    runner = PipelineRunner(load_config(path), workdir=workdir, tracker=tracker, steps=[Step("boom", boom)])
    with pytest.raises(ConfigError, match="tok3n"):  # the exception itself is untouched; what is shown is not
        runner.run()
    run_json = next((workdir / ".trainpipe" / "runs").glob("*/run.json"))
    assert stat.S_IMODE(run_json.stat().st_mode) == 0o600
    text = run_json.read_text()
    assert "tok3n" not in text
    assert "unreachable at http://user:***@127.0.0.1:9/" in text
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([tracker.experiment_id])
    assert len(runs) == 2
    for run in runs:
        assert not [k for k, v in {**run.data.tags, **run.data.params}.items() if "tok3n" in v], run.data.tags
    assert any("user:***@" in r.data.tags.get("trainpipe.error", "") for r in runs)


def test_text_artifacts_are_uploaded_scrubbed_and_binary_ones_untouched(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from trainpipe.tracking import MlflowTracker

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker(uri, "art", tmp_path / "mlartifacts")
    run = tracker.start_run("r", tags={"note": f"see {URI}"})
    folder = tmp_path / "evaluation"
    folder.mkdir()
    (folder / "notes.md").write_text(f"store: {URI}\nkey: {TOKENS['aws access key id']}\n")
    (folder / "weights.bin").write_bytes(b"\x00tok3n\x00")
    (tmp_path / "card.json").write_text('{"ok": true}')
    tracker.log_artifact(run, folder, "evaluation")
    tracker.log_artifact(run, tmp_path / "card.json")
    tracker.end_run(run)
    client = MlflowClient(tracking_uri=uri)
    down = Path(client.download_artifacts(run, "", str(tmp_path / "down")))
    assert (down / "evaluation" / "notes.md").read_text() == "store: http://user:***@127.0.0.1:9/\nkey: ***\n"
    assert (down / "evaluation" / "weights.bin").read_bytes() == b"\x00tok3n\x00"
    assert (down / "card.json").read_text() == '{"ok": true}'
    assert "tok3n" in (folder / "notes.md").read_text()  # the local file is the run's own: left as it is
    assert client.get_run(run).data.tags["note"] == "see http://user:***@127.0.0.1:9/"


def _grep_tree(root: Path, needle: bytes) -> list[str]:
    hits = []
    for f in root.rglob("*"):
        if f.is_file() and not f.is_symlink() and needle in f.read_bytes():
            hits.append(str(f.relative_to(root)))
    return hits


@pytest.mark.slow
def test_a_real_run_leaves_the_interpolated_secret_nowhere(workdir: Path) -> None:
    from mlflow import MlflowClient

    make_frame(300).to_csv(workdir / "data.csv", index=False)
    write_pipeline(workdir, 'name: secretive\ndescription: "trained with ${API_KEY}"\n'
                            "data: {source: data.csv, target: label}\n"
                            "model: {type: sklearn.linear_model.LogisticRegression}\n"
                            "evaluation: {latency: false}\n")
    env = {**os.environ, "API_KEY": SECRET, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "trainpipe.cli", "run", "pipeline.yaml"], cwd=workdir,
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert SECRET not in proc.stdout + proc.stderr
    assert _grep_tree(workdir, SECRET.encode()) == []
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/.trainpipe/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) > 3
    parent = [r for r in runs if r.data.tags.get("trainpipe.kind") == "pipeline"]
    assert parent[0].data.tags["mlflow.note.content"] == "trained with ***"
    for run in runs:
        values: dict[str, Any] = {**run.data.tags, **run.data.params}
        assert not [k for k, v in values.items() if SECRET in str(v)], run.info.run_name
        assert not [k for k in run.data.metrics if SECRET in k]
    for run_json in (workdir / ".trainpipe" / "runs").glob("*/run.json"):
        assert stat.S_IMODE(run_json.stat().st_mode) == 0o600


@pytest.mark.slow
def test_a_secret_interpolated_into_the_data_path_stays_out_of_every_record(workdir: Path) -> None:
    """``data.source: ${DATA_DIR_TOKEN}/...``: the value is a secret-named variable's; no record keeps it."""
    hidden = "tok3nDirectory9"
    (workdir / hidden).mkdir()
    make_frame(300).to_csv(workdir / hidden / "data.csv", index=False)
    write_pipeline(workdir, "name: secret-path\ndata: {source: '${DATA_DIR_TOKEN}/data.csv', target: label}\n"
                            "model: {type: sklearn.linear_model.LogisticRegression}\n"
                            "evaluation: {latency: false, plots: false}\n")
    env = {**os.environ, "DATA_DIR_TOKEN": hidden, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "trainpipe.cli", "run", "pipeline.yaml"], cwd=workdir,
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert hidden not in proc.stdout + proc.stderr
    ingest = next((workdir / ".trainpipe" / "runs").glob("*/steps/ingest/ingest.json"))
    assert "***" in ingest.read_text()
    assert [h for h in _grep_tree(workdir, hidden.encode()) if not h.startswith(hidden)] == []


# -- MLflow's own "View run ... at: URI" line -------------------------------------------------------------

def test_mlflow_never_prints_the_view_run_line_with_credentials(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow.tracking._tracking_service.client import TrackingServiceClient

    from trainpipe.tracking import MlflowTracker

    monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(ConfigError, match=r"http://user:\*\*\*@127\.0\.0\.1:9/") as info:
        MlflowTracker(URI, "exp")
    assert "tok3n" not in str(info.value)
    assert os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"

    fake_run = SimpleNamespace(info=SimpleNamespace(experiment_id="1", run_name="train"),
                               data=SimpleNamespace(tags={}))  # what MLflow reads of a run
    client = TrackingServiceClient(URI)
    monkeypatch.setattr(client.store, "get_run", lambda run_id: fake_run)
    client._log_url("abc")  # what MLflow calls after ending a run on a server
    assert capsys.readouterr().out == ""
    # even a user's own setting is overridden when the URI carries credentials
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "false")
    with pytest.raises(ConfigError):
        MlflowTracker(URI, "exp")
    client._log_url("abc")
    assert capsys.readouterr().out == ""


def test_a_console_note_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Notes quote exceptions and values (a champion that could not score, a registry error): the console masks
    secrets in them as it does in errors."""
    import io

    from rich.console import Console

    from trainpipe._cli_render import RichHooks

    monkeypatch.setenv("WAREHOUSE_TOKEN", "s3cr3t-value-xyz")
    out = io.StringIO()
    hooks = RichHooks(Console(file=out, width=200))
    hooks.on_message("champion could not score: OperationalError postgresql://u:pw@db/x s3cr3t-value-xyz")
    text = out.getvalue()
    assert "s3cr3t-value-xyz" not in text and ":pw@" not in text and "champion could not score" in text
