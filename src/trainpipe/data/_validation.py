"""Data validation with pandera, before any training.

Declared checks come from ``validation.columns``. The default checks refuse only what is wrong: too few rows
for the split, missing or infinite labels, a single class, a column named in the config that is not there, and
a text column that is nearly all numbers (a few bad cells, see ``_cells``). What is merely unusual is a note:
duplicate rows, a column mostly missing (imputed), a rare class; ``validation.max_duplicate_fraction``,
``max_missing_fraction``, ``min_class_fraction`` and ``min_rows`` turn those into checks. The report names
column, check and counts. A target that is not a column, or that no task can learn (dates; many non-integer
numbers on a classification task), is a :class:`DataError` (exit 2): the config names the wrong column.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from trainpipe.data._leakage import comparison_columns, duplicate_note

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pandas as pd

    from trainpipe.config import ColumnCheck, PipelineConfig

_TABLE = "<table>"


@dataclass(frozen=True)
class CheckResult:
    column: str
    check: str
    passed: bool
    observed: str
    expected: str
    failing_rows: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ValidationReport:
    n_rows: int
    n_columns: int
    checks: list[CheckResult]
    notes: list[str] = field(default_factory=list)  # what the user should hear, not failures (inf cells)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "n_rows": self.n_rows, "n_columns": self.n_columns,
                "checks": [asdict(c) for c in self.checks], "notes": list(self.notes)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        return cls(data["n_rows"], data["n_columns"], [CheckResult(**c) for c in data["checks"]],
                   list(data.get("notes", [])))

    def summary(self) -> str:
        """One line per failed check: column, check, counts."""
        lines = [f"data validation failed: {len(self.failures)} of {len(self.checks)} checks "
                 f"({self.n_rows} rows, {self.n_columns} columns)"]
        for c in self.failures:
            rows = f", {c.failing_rows} rows" if c.failing_rows else ""
            ex = f", e.g. {', '.join(c.examples[:3])}" if c.examples else ""
            lines.append(f"  - {c.column}: {c.check}: observed {c.observed}, expected {c.expected}{rows}{ex}")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        rows = ["| column | check | result | observed | expected | failing rows |", "|---|---|---|---|---|---|"]
        for c in self.checks:
            rows.append(f"| {c.column} | {c.check} | {'pass' if c.passed else 'FAIL'} | {c.observed} | "
                        f"{c.expected} | {c.failing_rows} |")
        verdict = "passed" if self.passed else "FAILED"
        head = f"# Data validation: {verdict}\n\n{self.n_rows} rows, {self.n_columns} columns\n\n"
        notes = "".join(f"- {n}\n" for n in self.notes)
        return head + "\n".join(rows) + "\n" + (f"\n## Notes\n\n{notes}" if notes else "")


def validate_frame(df: pd.DataFrame, config: PipelineConfig, is_classification: bool | None = None,
                   test: pd.DataFrame | None = None,
                   hasher: Callable[[list[str]], np.ndarray] | None = None) -> ValidationReport:
    """Run every declared and default check and return the report. Bad data does not raise; a ``data.target``
    that is not a column, or that no task can learn, raises :class:`DataError` (a config mistake). ``test``: the
    given test set (``data.test_source``), checked against ``df``'s columns and labels. ``hasher``: the row
    hashes of ``df`` (see :func:`~trainpipe.data._leakage.duplicate_mask`)."""
    import numpy as np
    import pandas as pd

    vc = config.validation
    target = config.data.target
    _check_target(df, config)
    results: list[CheckResult] = []
    n = len(df)

    notes: list[str] = []
    results.append(_min_rows_check(n, config, notes))
    compared = comparison_columns(df, config) if n else []  # feature columns + target
    if n:
        dup, note = duplicate_note(df, compared, hasher)
        if note:
            notes.append(note)
        if vc.max_duplicate_fraction is not None:
            frac = dup / n
            results.append(_compare(_TABLE, "max_duplicate_fraction", f"{frac:.4f} ({dup} rows)",
                                    f"<= {vc.max_duplicate_fraction}", frac <= vc.max_duplicate_fraction, dup))
    if target in df.columns:
        y = df[target]
        missing = int(y.isna().sum())
        results.append(_compare(target, "target_not_null", f"{missing} missing labels", "0", missing == 0, missing))
        if pd.api.types.is_float_dtype(y):
            infinite = int(np.isinf(y.to_numpy(dtype=float, na_value=np.nan)).sum())
            results.append(_compare(target, "target_finite", f"{infinite} infinite values", "0", infinite == 0,
                                    infinite))
        if is_classification is None:
            is_classification = _looks_categorical(y, config.task)
        if is_classification:
            counts = y.dropna().astype(str).value_counts()
            results.append(_compare(target, "min_classes", f"{len(counts)} classes", ">= 2", len(counts) >= 2))
            if len(counts) >= 2:
                smallest = counts.index[-1]
                frac = counts.iloc[-1] / counts.sum()
                if vc.min_class_fraction is not None:
                    results.append(_compare(target, "min_class_fraction", f"{frac:.4f} (class {smallest!r})",
                                            f">= {vc.min_class_fraction}", frac >= vc.min_class_fraction))
                elif frac < RARE_CLASS_NOTE:
                    notes.append(f"rare class: {smallest!r} is {frac:.2%} of target {target!r} "
                                 f"({int(counts.iloc[-1])} rows): accuracy hides it, look at its recall and "
                                 "pr_auc (validation.min_class_fraction refuses such data)")

    results.extend(_missing_checks(df, config, compared, notes))

    declared = _declared_feature_columns(config)
    f = config.features
    for col in declared:
        if col not in df.columns:
            named_in = ("features.*" if col in (*(f.numeric or []), *(f.categorical or []), *f.text)
                        else "evaluation.slices")
            results.append(CheckResult(col, "required_column", False, "column missing",
                                       f"column named in {named_in}", 0, _closest(col, df.columns)))

    for col in config.features.numeric or []:
        if col in df.columns:
            results.append(_numeric_feature_check(df[col], col))
    results.extend(_numeric_looking_checks(df, config))

    results.extend(_declared_column_results(df, vc))
    from trainpipe.data._text_checks import test_source_checks, text_validation

    text_checks, text_notes = text_validation(df, config)
    results.extend(CheckResult(*c) for c in text_checks)
    if test is not None:
        classification = target in df.columns and _looks_categorical(df[target], config.task)
        results.extend(CheckResult(*c) for c in test_source_checks(df, test, config, classification))
    return ValidationReport(n, df.shape[1], results, [*notes, *text_notes, *_infinite_notes(df, config)])


def _declared_column_results(df: pd.DataFrame, vc: Any) -> list[CheckResult]:
    """``validation.columns``: each declared column's checks, run by one pandera schema."""
    if not vc.columns:  # none declared (the default): no schema, and no pandera import (0.08 s)
        return []
    import pandera.pandas as pa
    from pandera.errors import SchemaErrors

    results: list[CheckResult] = []
    columns: dict[str, Any] = {}
    for col, spec in vc.columns.items():
        if col not in df.columns:
            if spec.required:
                results.append(CheckResult(col, "required_column", False, "column missing",
                                           "column declared in validation.columns", 0, _closest(col, df.columns)))
            continue
        columns[col] = pa.Column(checks=_column_checks(pa, spec, df[col]), nullable=spec.nullable,
                                 unique=spec.unique, required=spec.required, coerce=False)
    if columns:
        schema = pa.DataFrameSchema(columns, strict=False)
        try:
            schema.validate(df, lazy=True)
            failed: dict[tuple[str, str], tuple[int, list[str]]] = {}
        except SchemaErrors as err:
            failed = _summarise_failures(err.failure_cases)
        for col, spec in vc.columns.items():
            if col not in df.columns:
                continue
            for name, expected in _expected_of(spec):
                count, examples = failed.get((col, name), (0, []))
                passed = (col, name) not in failed
                observed = "ok" if passed else f"{count} failing rows"
                results.append(CheckResult(col, name, passed, observed, expected, count, examples))
    return results


def validate_interactions(df: pd.DataFrame, config: PipelineConfig) -> ValidationReport:
    """The ``validation:`` checks that apply to user-item interactions (``task: ranking``), on the ingested
    rows, with the same engine as :func:`validate_frame`: ``min_rows`` (interactions), ``max_missing_fraction``
    (per column), ``max_duplicate_fraction`` (repeated (user, item) pairs) and ``columns``. The keys that cannot
    apply (``min_class_fraction``: there are no classes) are refused when the config is loaded."""
    vc, n = config.validation, len(df)
    user, item = str(config.data.user), str(config.data.item)
    results: list[CheckResult] = []
    notes: list[str] = []
    if vc.min_rows is not None:
        results.append(_compare(_TABLE, "min_rows", f"{n} interactions", f">= {vc.min_rows}", n >= vc.min_rows))
    if vc.max_duplicate_fraction is not None and n and user in df.columns and item in df.columns:
        dup = int(df.duplicated([user, item]).sum())
        frac = dup / n
        results.append(_compare(f"{user}, {item}", "max_duplicate_fraction", f"{frac:.4f} ({dup} repeated pairs)",
                                f"<= {vc.max_duplicate_fraction}", frac <= vc.max_duplicate_fraction, dup))
    if vc.max_missing_fraction is not None:
        results.extend(_missing_checks(df, config, [], notes))
    results.extend(_declared_column_results(df, vc))
    return ValidationReport(n, df.shape[1], results, notes)


RARE_CLASS_NOTE = 0.01  # a class below this share of the labels gets a note (not a failure) by default
SPARSE_COLUMN_NOTE = 0.5  # a column with more missing values than this share gets a note by default
SMALL_TABLE_NOTE = 100  # fewer rows: a note that the test metrics rest on few rows


def _min_rows_check(n: int, config: PipelineConfig, notes: list[str]) -> CheckResult:
    """``validation.min_rows`` when set; else the fewest rows data.split can cut (fewer is an error), and a
    note for a small table (its test metrics rest on a handful of rows)."""
    from trainpipe.data._split import _split_sizes, min_splittable_rows

    vc, split = config.validation, config.data.split
    if vc.min_rows is not None:
        return _compare(_TABLE, "min_rows", n, f">= {vc.min_rows}", n >= vc.min_rows)
    needed = min_splittable_rows(split)
    if needed <= n < SMALL_TABLE_NOTE:
        notes.append(f"small table: {n} rows, so the test metrics rest on {_split_sizes(n, split)[0]} rows and "
                     "change a lot with data.split.seed")
    return _compare(_TABLE, "min_rows", n, f">= {needed} (the fewest data.split can cut into at least 2 training "
                    f"rows, 1 test row and {'1 validation row' if split.val_size else 'no validation split'})",
                    n >= needed)


def _missing_checks(df: pd.DataFrame, config: PipelineConfig, features: list[str],
                    notes: list[str]) -> list[CheckResult]:
    """Missing values per column (not the target: ``target_not_null``). With ``validation.max_missing_fraction``
    set, a column above it fails; by default a mostly-missing feature column is a note (the preprocessing
    imputes it, and drops a column with no value at all)."""
    vc, n = config.validation, len(df)
    limit = vc.max_missing_fraction
    out: list[CheckResult] = []
    for col in df.columns:
        if col == config.data.target or not n:
            continue
        miss = int(df[col].isna().sum())
        frac = miss / n
        if limit is not None and frac > limit:
            out.append(_compare(str(col), "max_missing_fraction", f"{frac:.4f} ({miss} rows)", f"<= {limit}",
                                False, miss))
        elif limit is None and SPARSE_COLUMN_NOTE < frac < 1.0 and col in features:
            notes.append(f"sparse column: {col!r} is {frac:.1%} missing ({miss} of {n} rows); the missing values "
                         "are imputed (features.numeric_impute for numbers, a 'missing' level for categories). "
                         "validation.max_missing_fraction refuses such columns.")
    if limit is not None and not out:
        out.append(CheckResult(_TABLE, "max_missing_fraction", True, "all columns within limit",
                               f"<= {limit} per column"))
    return out


def _compare(column: str, check: str, observed: Any, expected: str, passed: bool, rows: int = 0) -> CheckResult:
    return CheckResult(column, check, bool(passed), str(observed), expected, int(rows) if not passed else 0)


def _numeric_feature_check(series: pd.Series, col: str) -> CheckResult:
    import pandas as pd

    from trainpipe.data._cells import describe_bad_cells

    expected = "numbers (column listed in features.numeric)"
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return CheckResult(col, "numeric_feature", True, "ok", expected)
    values = series.dropna()
    bad = values[pd.to_numeric(values, errors="coerce").isna()]
    if bad.empty:
        return CheckResult(col, "numeric_feature", True, "ok", expected)
    examples, rows = describe_bad_cells(bad)
    return CheckResult(col, "numeric_feature", False, f"{len(bad)} non-numeric values at rows {rows}", expected,
                       len(bad), examples)


def _numeric_looking_checks(df: pd.DataFrame, config: PipelineConfig) -> list[CheckResult]:
    """A text column whose cells are nearly all numbers: a few bad cells turned a numeric feature into text,
    which would be taken as a category or dropped as identifier-like. Columns whose kind the config states
    (features lists, a validation.columns dtype) are left to those."""
    from trainpipe.data._cells import describe_bad_cells, numeric_looking_text

    f = config.features
    if f.numeric is not None or f.categorical is not None:
        return []  # only listed columns are used; features.numeric has its own check
    split = config.data.split
    skip = {config.data.target, *f.text, split.time_column, split.group_column,
            *(c for c, spec in config.validation.columns.items() if spec.dtype)}
    out: list[CheckResult] = []
    for col in df.columns:
        if col in skip:
            continue
        found = numeric_looking_text(df[col])
        if found is None:
            continue
        bad, present = found
        examples, rows = describe_bad_cells(bad)
        observed = (f"{len(bad)} of {present} present cells {'is' if len(bad) == 1 else 'are'} not a number, at "
                    f"row{'s' if len(bad) > 1 else ''} {rows} (row 1 = the first data row)")
        expected = ("numbers: fix those cells in the data, or declare them missing with data.na_values: "
                    f"[{', '.join(_yaml_quoted(v) for v in bad.drop_duplicates().head(5))}] (or list the column "
                    "under features.categorical if they are real categories)")
        out.append(CheckResult(str(col), "numeric_with_text_cells", False, observed, expected, len(bad), examples))
    return out


def _yaml_quoted(value: object) -> str:
    """A double-quoted YAML string for ``value`` (JSON's escapes are valid YAML: a NUL is written ``\u0000``)."""
    return json.dumps(str(value))


def _infinite_notes(df: pd.DataFrame, config: PipelineConfig) -> list[str]:
    from trainpipe.data._cells import infinite_counts

    f = config.features
    if f.numeric is not None or f.categorical is not None:
        columns = [c for c in f.numeric or [] if c in df.columns]
    else:
        columns = [c for c in df.columns if c != config.data.target]
    counts = infinite_counts(df, columns)
    return [f"column {col!r}: {n} infinite value{'s' if n > 1 else ''} (inf/-inf) treated as missing and imputed "
            "like the other missing values" for col, n in counts.items()]


def _check_target(df: pd.DataFrame, config: PipelineConfig) -> None:
    """``data.target`` names a column the task can learn, else :class:`DataError` with a did-you-mean."""
    import difflib

    from trainpipe._exceptions import DataError
    from trainpipe.data._task import check_target_usable

    target = config.data.target
    if target in df.columns:
        check_target_usable(df[target], config.task, target)
        return
    names = [str(c) for c in df.columns]
    lowered = {c.lower(): c for c in names}
    close = [lowered[c] for c in difflib.get_close_matches(target.lower(), list(lowered), n=3, cutoff=0.6)]
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    dropped = (" It is listed in data.drop_columns, which removes it before validation."
               if target in config.data.drop_columns else "")
    shown = ", ".join(names[:30]) + (f", ... ({len(names)} in all)" if len(names) > 30 else "")
    raise DataError(f"data.target: {target!r} is not a column of the data.{dropped}{hint} The columns are: "
                    f"{shown}. Set data.target (or --set data.target=NAME) to one of them.")


def _closest(name: str, columns: Any) -> list[str]:
    import difflib

    close = difflib.get_close_matches(name, [str(c) for c in columns], n=1, cutoff=0.6)
    return [f"did you mean {close[0]!r}?"] if close else []


def _looks_categorical(y: pd.Series, task: str) -> bool:
    import pandas as pd

    from trainpipe.tasks import registered_tasks, task_for

    if task in registered_tasks():  # a task named in the config decides; auto: the values
        return task_for(task).is_classification
    values = y.dropna()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return True
    return bool(values.nunique() <= 20 and (values % 1 == 0).all())


def _declared_feature_columns(config: PipelineConfig) -> list[str]:
    f = config.features
    cols = [*(f.numeric or []), *(f.categorical or []), *f.text]
    for c in config.evaluation.slices:
        if c not in cols:
            cols.append(c)
    return cols


def _expected_of(spec: ColumnCheck) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if spec.dtype:
        out.append((f"dtype_{spec.dtype}", f"values of type {spec.dtype}"))
    if spec.min is not None:
        out.append(("greater_than_or_equal_to", f">= {spec.min}"))
    if spec.max is not None:
        out.append(("less_than_or_equal_to", f"<= {spec.max}"))
    if spec.allowed is not None:
        out.append(("isin", f"one of {spec.allowed}"))
    if not spec.nullable:
        out.append(("not_nullable", "no missing values"))
    if spec.unique:
        out.append(("field_uniqueness", "unique values"))
    return out


def _column_checks(pa: Any, spec: ColumnCheck, series: pd.Series) -> list[Any]:
    import pandas as pd

    checks = []
    if spec.dtype:
        checks.append(pa.Check(_dtype_predicate(spec.dtype), element_wise=False, name=f"dtype_{spec.dtype}"))
    numeric = pd.api.types.is_numeric_dtype(series)
    if spec.min is not None:
        checks.append(pa.Check.ge(spec.min) if numeric else pa.Check(
            lambda s, lo=spec.min: pd.to_numeric(s, errors="coerce") >= lo, name="greater_than_or_equal_to"))
    if spec.max is not None:
        checks.append(pa.Check.le(spec.max) if numeric else pa.Check(
            lambda s, hi=spec.max: pd.to_numeric(s, errors="coerce") <= hi, name="less_than_or_equal_to"))
    if spec.allowed is not None:
        allowed = list(spec.allowed)
        if numeric:
            checks.append(pa.Check.isin(allowed))
        else:
            texts = {str(a) for a in allowed}
            checks.append(pa.Check(lambda s, t=texts: s.astype(str).isin(t), name="isin"))
    return checks


def _dtype_predicate(dtype: str) -> Any:
    import pandas as pd

    def check(s: pd.Series) -> Any:
        values = s.dropna()
        if dtype == "int":
            if pd.api.types.is_integer_dtype(values):
                return True
            num = pd.to_numeric(values, errors="coerce")
            return num.notna() & (num % 1 == 0)
        if dtype in ("float", "numeric"):
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                return True
            return pd.to_numeric(values, errors="coerce").notna()
        if dtype == "str":
            return values.map(lambda v: isinstance(v, str))
        if dtype == "bool":
            if pd.api.types.is_bool_dtype(values):
                return True
            return values.isin([0, 1, True, False])
        if dtype == "datetime":
            if pd.api.types.is_datetime64_any_dtype(values):
                return True
            return pd.to_datetime(values, errors="coerce", format="mixed").notna()
        return True

    return check


def _summarise_failures(cases: pd.DataFrame) -> dict[tuple[str, str], tuple[int, list[str]]]:
    out: dict[tuple[str, str], tuple[int, list[str]]] = {}
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        name = str(check)
        if name.startswith("not_nullable"):
            name = "not_nullable"
        name = name.split("(")[0]
        examples = [repr(v) for v in group["failure_case"].drop_duplicates().head(3).tolist()]
        count = int(group["index"].notna().sum()) or len(group)
        prev = out.get((str(column), name), (0, []))
        out[(str(column), name)] = (prev[0] + count, prev[1] + examples)
    return out
