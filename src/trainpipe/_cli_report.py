"""``trainpipe report``: the run, study or model page as one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trainpipe._cli_common import DebugOpt, UriOpt, _guard, _store_uri, out


def report(
    run_id: Annotated[str | None, typer.Argument(help="A run id (or its start), as `trainpipe runs list` shows it.",
                                                 show_default=False)] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write the page (default: "
                                                "report.html in the run directory; study-NAME.html / "
                                                "model-NAME.html here).")] = None,
    study: Annotated[str | None, typer.Option("--study", help="The page of this Optuna study.")] = None,
    storage: Annotated[str | None, typer.Option("--storage", help="The study's storage (tuning.storage); default: "
                                                "the one this project's newest run of the study used.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="The page of this registered model.")] = None,
    tracking_uri: UriOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Write a self-contained HTML report: of a run (RUN_ID), an Optuna study (--study) or a registered model
    (--model). The pages need no network; open them in any browser or print them."""

    def go() -> None:
        from trainpipe._exceptions import ConfigError
        from trainpipe.report._render import write_page

        chosen = [name for name, value in (("RUN_ID", run_id), ("--study", study), ("--model", model)) if value]
        if len(chosen) != 1:
            raise ConfigError("report: give exactly one of RUN_ID, --study NAME or --model NAME "
                              f"(got {', '.join(chosen) or 'none'}). E.g. trainpipe report RUN_ID -o report.html")
        if storage is not None and study is None:
            raise ConfigError("report: --storage goes with --study NAME.")
        state_dir = Path.cwd() / ".trainpipe"
        if run_id is not None:
            from trainpipe.report import find_run_dir, write_run_report

            run_dir = find_run_dir(state_dir, run_id)
            path = write_run_report(run_dir, output)
        elif study is not None:
            from trainpipe.report._render import render_study
            from trainpipe.report._study import load_study

            path = write_page(render_study(load_study(study, storage, state_dir)),
                              output or Path(f"study-{_file_part(study)}.html"))
        else:  # --model (exactly one was given)
            from trainpipe.report._model import load_model
            from trainpipe.report._render import render_model

            path = write_page(render_model(load_model(str(model), _store_uri(tracking_uri), state_dir)),
                              output or Path(f"model-{_file_part(str(model))}.html"))
        out.print(f"report: {path}", markup=False, highlight=False)

    _guard(debug, go)


def _file_part(name: str) -> str:
    """A study or model name as part of a file name: letters, digits, '.', '-' and '_' only."""
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name).strip("._")[:80] or "report"
