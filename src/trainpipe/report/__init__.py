"""Self-contained HTML reports: one page per run, per Optuna study and per registered model.

``write_run_report(run_dir)`` is called at the end of every pipeline run (``report.html`` in the run
directory, logged to the MLflow parent run); ``trainpipe report`` renders any of the three pages on demand.
"""

from trainpipe.report._record import RunRecord, champion_sentence, find_run_dir, load_run
from trainpipe.report._render import REPORT_FILE, render_run, write_run_report, write_run_report_safely

__all__ = ["REPORT_FILE", "RunRecord", "champion_sentence", "find_run_dir", "load_run", "render_run",
           "write_run_report", "write_run_report_safely"]
