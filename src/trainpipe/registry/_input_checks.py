"""The validation section's per-column checks, shipped with a registered model and applied by ``predict``.

At register time the ``nullable`` and ``allowed`` checks of ``validation.columns`` (the target's excepted) are
written as ``input_checks.json``, a pyfunc artifact beside the model. ``trainpipe predict`` applies them to the
rows it is given, with the same pandera checks the run's validate step uses, and reports each failing check:
column, check, how many rows, which rows (data rows counted from 1, as a spreadsheet shows them under the
header) and example values. What happens to those rows is the caller's choice (:data:`ON_INVALID`):

- ``fail`` (default): nothing is written, exit 3, as a run with the same data would stop at validate;
- ``skip``: the failing rows are left out of the output, the others are scored;
- ``keep``: every row is scored, the report is printed as a warning.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import DataValidationError

if TYPE_CHECKING:
    import pandas as pd

    from trainpipe.config import ColumnCheck

FILE = "input_checks.json"
ARTIFACT = "input_checks"
ON_INVALID = ("fail", "skip", "keep")
_MAX_ROWS_SHOWN = 10


def checks_payload(columns: Mapping[str, ColumnCheck], target: str | None) -> dict[str, Any]:
    """The JSON stored with the model: per column, the checks ``predict`` applies."""
    out: dict[str, dict[str, Any]] = {}
    for name, spec in columns.items():
        if name == target:
            continue
        entry: dict[str, Any] = {}
        if not spec.nullable:
            entry["nullable"] = False
        if spec.allowed is not None:
            entry["allowed"] = list(spec.allowed)
        if entry:
            out[str(name)] = entry
    return {"format": 1, "columns": out}


def write_checks(payload: Mapping[str, Any], folder: Path) -> Path:
    path = folder / FILE
    path.write_text(json.dumps(payload, indent=1))
    return path


def read_checks(path: Path | None) -> dict[str, dict[str, Any]]:
    """Per-column checks from a stored ``input_checks.json``; {} without one (a model registered before)."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
        columns = data["columns"]
        if not isinstance(columns, dict):
            raise TypeError("columns is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        from trainpipe._exceptions import ConfigError

        raise ConfigError(f"{path}: the model's stored input checks cannot be read ({exc}); the model folder is "
                          "damaged. Register the model again.") from exc
    return {str(k): dict(v) for k, v in columns.items() if isinstance(v, dict)}


@dataclass(frozen=True)
class Failure:
    column: str
    check: str
    expected: str
    rows: list[int]  # data rows counted from 1
    examples: list[str] = field(default_factory=list)

    def line(self) -> str:
        shown = ", ".join(map(str, self.rows[:_MAX_ROWS_SHOWN])) + (", ..." if len(self.rows) > _MAX_ROWS_SHOWN else "")
        ex = f"; values {', '.join(self.examples[:3])}" if self.examples else ""
        return (f"  - {self.column}: {self.check}: {len(self.rows)} row(s) fail, expected {self.expected} "
                f"(rows {shown}{ex})")


@dataclass(frozen=True)
class InputCheckReport:
    n_rows: int
    failures: list[Failure]
    invalid: list[int]  # positions (0-based) of the rows that fail any check

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self, source: str) -> str:
        return (f"{source}: {len(self.invalid)} of {self.n_rows} rows fail the model's input checks "
                "(validation.columns of the run that trained it; rows counted from 1 after the header):\n"
                + "\n".join(f.line() for f in self.failures))


class InvalidInputRows(DataValidationError):
    """``predict`` got rows that fail the model's stored input checks (exit 3)."""


def check_rows(df: pd.DataFrame, checks: Mapping[str, Mapping[str, Any]]) -> InputCheckReport:
    """Apply the stored checks to the columns of ``df`` that have them, as the run's validate step does."""
    if not any(name in df.columns for name in checks):  # nothing to check: pandera is not even imported
        return InputCheckReport(len(df), [], [])
    import pandera.pandas as pa
    from pandera.errors import SchemaErrors

    from trainpipe.config import ColumnCheck
    from trainpipe.data._validation import _column_checks  # the run's own checks, so both agree

    columns: dict[str, Any] = {}
    expected: dict[tuple[str, str], str] = {}
    for name, entry in checks.items():
        if name not in df.columns:
            continue  # a column the file lacks: the signature check names the ones the model needs
        spec = ColumnCheck(nullable=bool(entry.get("nullable", True)), allowed=entry.get("allowed"))
        columns[name] = pa.Column(checks=_column_checks(pa, spec, df[name]), nullable=spec.nullable,
                                  required=False, coerce=False)
        if spec.allowed is not None:
            expected[(name, "isin")] = f"one of {spec.allowed}"
        if not spec.nullable:
            expected[(name, "not_nullable")] = "no missing values"
    if not columns:
        return InputCheckReport(len(df), [], [])
    frame = df.reset_index(drop=True)
    try:
        pa.DataFrameSchema(columns, strict=False).validate(frame, lazy=True)
        return InputCheckReport(len(df), [], [])
    except SchemaErrors as err:
        cases = err.failure_cases
    failures: list[Failure] = []
    invalid: set[int] = set()
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        name = "not_nullable" if str(check).startswith("not_nullable") else str(check).split("(")[0]
        rows = sorted({int(i) for i in group["index"].dropna()})
        invalid.update(rows)
        examples = [repr(v) for v in group["failure_case"].drop_duplicates().head(3).tolist()]
        failures.append(Failure(str(column), name, expected.get((str(column), name), name),
                                [r + 1 for r in rows], examples))
    return InputCheckReport(len(df), failures, sorted(invalid))


def apply_checks(df: pd.DataFrame, checks: Mapping[str, Mapping[str, Any]], on_invalid: str,
                 source: str) -> tuple[pd.DataFrame, InputCheckReport]:
    """``df`` with the rows ``on_invalid`` says to keep, and the report; ``fail`` raises
    :class:`InvalidInputRows` (exit 3) when any row fails."""
    from trainpipe._exceptions import ConfigError

    if on_invalid not in ON_INVALID:
        raise ConfigError(f"--on-invalid: expected one of {', '.join(ON_INVALID)}, got {on_invalid!r}.")
    report = check_rows(df, checks)
    if report.passed:
        return df, report
    if on_invalid == "fail":
        raise InvalidInputRows(report.summary(source) + "\nNothing was written. Fix those rows, or pass "
                               "--on-invalid skip (score the other rows) or --on-invalid keep (score every row).",
                               report)
    if on_invalid == "skip":
        if len(report.invalid) == len(df):
            raise InvalidInputRows(report.summary(source) + "\nEvery row fails; nothing was written.", report)
        bad = set(report.invalid)
        return df.iloc[[i for i in range(len(df)) if i not in bad]], report
    return df, report


__all__ = ["ARTIFACT", "FILE", "ON_INVALID", "InputCheckReport", "InvalidInputRows", "apply_checks",
           "check_rows", "checks_payload", "read_checks", "write_checks"]
