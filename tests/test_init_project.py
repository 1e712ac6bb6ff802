"""`trainpipe init DATA --target COL`: a starter file that loads, infers what the run infers, and validates."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from trainpipe.cli import app
from trainpipe.config import load_config

runner = CliRunner()


def test_init_writes_a_file_that_validates_on_real_data(workdir: Path, telco: pd.DataFrame) -> None:
    (workdir / "data").mkdir()
    telco.to_csv(workdir / "data" / "churn.csv", index=False)
    result = runner.invoke(app, ["init", "data/churn.csv", "--target", "churn", "-o", "proj/pipeline.yaml"])
    assert result.exit_code == 0, result.output
    assert "task binary" in result.output
    written = workdir / "proj" / "pipeline.yaml"
    text = written.read_text()
    assert text.startswith("# Starter pipeline written by `trainpipe init`")
    cfg = load_config(written).config
    assert cfg.task == "binary"
    assert cfg.data.source == "../data/churn.csv"  # relative to the file, as the loader reads it
    assert cfg.data.positive_label == "Yes"
    assert "tenure" in (cfg.features.numeric or [])
    assert "contract" in (cfg.features.categorical or [])
    assert cfg.validation.columns["contract"].allowed == ["Month-to-month", "One year", "Two year"]
    # the suggested checks accept the very data they were drawn from
    check = runner.invoke(app, ["validate", str(written)])
    assert check.exit_code == 0, check.output


@pytest.mark.parametrize(("source", "target", "task"), [
    ("sklearn:iris", "target", "multiclass"),
    ("sklearn:diabetes", "target", "regression"),
])
def test_init_infers_the_task_of_packaged_data(workdir: Path, source: str, target: str, task: str) -> None:
    result = runner.invoke(app, ["init", source, "--target", target])
    assert result.exit_code == 0, result.output
    cfg = load_config(workdir / "pipeline.yaml").config
    assert cfg.task == task
    assert cfg.data.source == source
    assert cfg.name == source.split(":")[1]


def test_init_unknown_target_is_exit_2_with_did_you_mean(workdir: Path, frame: pd.DataFrame) -> None:
    frame.to_csv(workdir / "d.csv", index=False)
    result = runner.invoke(app, ["init", "d.csv", "--target", "lable"])
    assert result.exit_code == 2
    assert "Did you mean 'label'" in result.output
    assert not (workdir / "pipeline.yaml").exists()


def test_init_refuses_to_overwrite_without_force(workdir: Path, frame: pd.DataFrame) -> None:
    frame.to_csv(workdir / "d.csv", index=False)
    (workdir / "pipeline.yaml").write_text("# mine\n")
    result = runner.invoke(app, ["init", "d.csv", "--target", "label"])
    assert result.exit_code == 2
    assert "--force" in result.output
    assert (workdir / "pipeline.yaml").read_text() == "# mine\n"
    forced = runner.invoke(app, ["init", "d.csv", "--target", "label", "--force"])
    assert forced.exit_code == 0, forced.output
    assert load_config(workdir / "pipeline.yaml").config.data.target == "label"
