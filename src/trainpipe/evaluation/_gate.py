"""The quality gate: absolute thresholds, then the challenger against the champion.

The champion is the version under the alias ``gate.champion.against`` (``production`` by default); when
that alias is unset, the version under the other alias (``staging``) is the champion instead, so that a
second run cannot take ``@staging`` from a better model just because nothing is in production yet.

The champion comparison is paired: both models score the same test rows, and a bootstrap over those
rows gives the confidence interval of the difference. The challenger passes the comparison when its
advantage (sign-adjusted so that positive is better) is above ``min_delta`` *and* the lower bound of
the interval is at least ``min_delta`` — better by the margin, and not by luck. ``min_delta`` may be
negative to accept a non-inferior challenger.

The fairness gate (``gate.slices``) looks at each level of a column in the test split: every slice of at
least ``min_rows`` rows must reach the floor (``min``: the worst value a slice may have, in the metric's
direction), and the gap between the best and the worst such slice must stay within ``max_gap``. Smaller
slices, and slices where a metric is undefined (one class only), are shown in the table but not gated: a
metric on a handful of rows says more about chance than about the model. A column none of whose slices can
be gated refuses the model (the rule could not be checked).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from trainpipe.evaluation._metrics import METRICS

if TYPE_CHECKING:
    import numpy as np

    from trainpipe.tasks import Task

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq,
}
_RULE = re.compile(r"\s*(>=|<=|>|<|==)\s*(\S+)\s*")
# The gate names of what the evaluation measures besides metrics (see _latency.py and _evaluate.py).
LATENCY_KEYS = ("latency_p50_ms", "latency_p95_ms", "latency_rows_timed", "batch_rows_per_s")


@dataclass
class ThresholdCheck:
    metric: str
    rule: str
    value: float | None
    passed: bool
    note: str = ""


@dataclass
class ChampionComparison:
    champion_version: str
    metric: str
    challenger_value: float
    champion_value: float
    delta: float  # challenger - champion, sign-adjusted: > 0 means the challenger is better
    ci_low: float
    ci_high: float
    confidence: float
    min_delta: float
    n_boot: int
    passed: bool
    note: str = ""
    champion_alias: str = "production"  # the alias the champion version was found under


@dataclass
class SliceCheck:
    """One rule of ``gate.slices``: ``kind`` "min" (the worst slice against the floor) or "max_gap" (best minus
    worst against the ceiling)."""

    column: str
    metric: str
    kind: str
    bound: float
    value: float | None  # the worst slice's value, or the gap
    worst: str  # the slice at fault (the worst one)
    best: str = ""  # max_gap: the best slice
    passed: bool = True
    note: str = ""


@dataclass
class GateReport:
    thresholds: list[ThresholdCheck] = field(default_factory=list)
    champion: ChampionComparison | None = None
    champion_note: str = ""
    champion_unresolved: bool = False  # a champion exists but could not be compared: refused
    passed: bool = True
    slices: list[SliceCheck] = field(default_factory=list)
    slice_table: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return "passed" if self.passed else "refused"

    def reasons(self) -> list[str]:
        out = [f"{c.metric} = {_fmt(c.value)} does not meet '{c.rule}'{(' (' + c.note + ')') if c.note else ''}"
               for c in self.thresholds if not c.passed]
        if self.champion_unresolved:
            out.append(self.champion_note.strip())
        out += [_slice_reason(c) for c in self.slices if not c.passed]
        if self.champion is not None and not self.champion.passed:
            c = self.champion
            out.append(
                f"does not beat the {c.champion_alias} champion (version {c.champion_version}) on {c.metric}: "
                f"delta {c.delta:+.4f}, {c.confidence:.0%} CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}], "
                f"required > {c.min_delta:+.4f} with the lower bound >= {c.min_delta:+.4f}"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "passed": self.passed,
                "thresholds": [asdict(c) for c in self.thresholds],
                "champion": asdict(self.champion) if self.champion else None,
                "champion_note": self.champion_note, "reasons": self.reasons(),
                "slices": [asdict(c) for c in self.slices], "slice_table": self.slice_table}

    def to_markdown(self) -> str:
        lines = [f"# Gate report: **{self.verdict.upper()}**", ""]
        if self.thresholds:
            lines += ["## Thresholds", "", "| metric | rule | value | result |", "|---|---|---|---|"]
            lines += [f"| {c.metric} | {c.rule} | {_fmt(c.value)} | {'pass' if c.passed else 'FAIL'}"
                      f"{(' — ' + c.note) if c.note else ''} |" for c in self.thresholds]
            lines.append("")
        else:
            lines += ["No thresholds configured (gate.thresholds).", ""]
        if self.slices:
            lines += _slices_markdown(self.slices, self.slice_table)
        lines += ["## Champion comparison", ""]
        if self.champion is not None:
            c = self.champion
            lines += [
                f"Champion: @{c.champion_alias}, version {c.champion_version}, re-scored on this run's test "
                "split.", "",
                "| metric | challenger | champion | delta | CI | required | result |",
                "|---|---|---|---|---|---|---|",
                f"| {c.metric} | {c.challenger_value:.5f} | {c.champion_value:.5f} | {c.delta:+.5f} | "
                f"[{c.ci_low:+.5f}, {c.ci_high:+.5f}] ({c.confidence:.0%}, {c.n_boot} paired bootstrap resamples) | "
                f"> {c.min_delta:+.4f}, lower bound >= {c.min_delta:+.4f} | {'pass' if c.passed else 'FAIL'} |",
                "",
                "Delta is sign-adjusted: positive means the challenger is better.",
            ]
            if c.note:
                lines += ["", c.note]
        else:
            lines.append(self.champion_note or "No champion (production or staging): nothing to compare against.")
        if not self.passed:
            lines += ["", "## Why refused", ""] + [f"- {r}" for r in self.reasons()]
        return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.5g}"


def parse_rule(rule: str) -> tuple[str, float]:
    m = _RULE.fullmatch(rule)
    if m is None:  # the config schema already checked the form
        raise ValueError(f"bad threshold rule {rule!r}")
    return m.group(1), float(m.group(2))


def check_thresholds(thresholds: Mapping[str, str], values: Mapping[str, float],
                     computed: Collection[str] | None = None) -> list[ThresholdCheck]:
    """``values`` uses gate names: metric names (``roc_auc``) and latency keys (``latency_p95_ms``).

    ``computed``: the metric names the evaluation computed (``metrics.json``), values or not; it lets a
    missing value be explained precisely.
    """
    checks = []
    for metric, rule in thresholds.items():
        op, bound = parse_rule(rule)
        value = values.get(metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            checks.append(ThresholdCheck(metric, rule.strip(), None, False, _missing_note(metric, computed)))
            continue
        checks.append(ThresholdCheck(metric, rule.strip(), float(value), _OPS[op](float(value), bound)))
    return checks


def is_latency_key(name: str) -> bool:
    return name.startswith(("latency_", "batch_"))


def _missing_note(metric: str, computed: Collection[str] | None) -> str:
    if is_latency_key(metric):
        if metric not in LATENCY_KEYS:
            return f"unknown latency key; the gate knows {', '.join(LATENCY_KEYS)}"
        return "latency was not measured (evaluation.latency: false)"
    known = METRICS.get(metric)
    if known is None:
        return "unknown metric"
    if computed is not None and metric not in computed:
        return "not computed: it does not apply to this task"
    if known.needs_proba:
        return ("undefined: the model gives no class probabilities, or a class is missing from the test "
                "split" if computed is not None else
                "no value: not computed for this task, no class probabilities, or a class missing from the test split")
    return ("undefined on this test split" if computed is not None
            else "no value: not computed for this task, or undefined on this test split")


def metric_scores(metric: str, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, k: int) -> float:
    m = METRICS[metric]
    return float(m.fn(y, pred, proba, k))


def paired_bootstrap(metric: str, y: np.ndarray, challenger: tuple[np.ndarray, np.ndarray | None],
                     champion: tuple[np.ndarray, np.ndarray | None], k: int, *, confidence: float,
                     n_boot: int = 1000, seed: int = 0, max_rows: int | None = None,
                     ) -> tuple[float, float, float, float, float, int]:
    """(challenger value, champion value, delta, ci_low, ci_high, resamples used); delta > 0 = challenger better.

    Resamples where the metric is undefined (one class only) are dropped. A test split of more than
    ``max_rows`` rows (default: the evaluation intervals' ``MAX_ROWS``, 20,000) is resampled on a seeded random
    subsample of that many rows, and the interval's spread is rescaled by sqrt(m / n) around the whole split's
    delta (the m-out-of-n bootstrap, as for the evaluation intervals; valid for these asymptotically normal
    statistics): the gate then costs the same on 65,000 rows as on 20,000, not three times as much.
    """
    import numpy as np

    from trainpipe.evaluation._intervals import MAX_ROWS

    limit = MAX_ROWS if max_rows is None else max_rows
    if len(y) > limit:
        return _m_out_of_n(metric, y, challenger, champion, k, confidence=confidence, n_boot=n_boot, seed=seed,
                           rows=limit)
    m = METRICS[metric]
    sign = 1.0 if m.greater_is_better else -1.0
    fast = metric == "roc_auc" and k == 2  # the common case: rank-based AUC, ~20x cheaper than sklearn's

    def score(idx: np.ndarray | None, pair: tuple[np.ndarray, np.ndarray | None]) -> float:
        pred, proba = pair
        if fast and proba is not None:
            return _binary_auc(y if idx is None else y[idx], proba[:, 1] if idx is None else proba[idx, 1])
        if idx is None:
            return float(m.fn(y, pred, proba, k))
        return float(m.fn(y[idx], pred[idx], None if proba is None else proba[idx], k))

    a, b = score(None, challenger), score(None, champion)
    rng = np.random.default_rng(seed)
    n = len(y)
    deltas = []
    weighted = None
    if (fast and challenger[1] is not None and champion[1] is not None
            and not (np.isnan(challenger[1][:, 1]).any() or np.isnan(champion[1][:, 1]).any())):
        weighted = (_WeightedAuc(y, challenger[1][:, 1]), _WeightedAuc(y, champion[1][:, 1]))
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        try:
            if weighted is not None:  # the same value as scoring the resample, without sorting it
                counts = np.bincount(idx, minlength=n)
                d = sign * (weighted[0].auc(counts) - weighted[1].auc(counts))
            else:
                d = sign * (score(idx, challenger) - score(idx, champion))
        except ValueError:
            continue
        if not math.isnan(d):
            deltas.append(d)
    if not deltas:
        raise ValueError(f"no bootstrap resample gave a defined {metric}")
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(np.asarray(deltas), [alpha, 1.0 - alpha])
    return a, b, sign * (a - b), float(lo), float(hi), len(deltas)


def _m_out_of_n(metric: str, y: np.ndarray, challenger: tuple[np.ndarray, np.ndarray | None],
                champion: tuple[np.ndarray, np.ndarray | None], k: int, *, confidence: float, n_boot: int,
                seed: int, rows: int) -> tuple[float, float, float, float, float, int]:
    """:func:`paired_bootstrap` on ``rows`` of the ``n`` test rows, its interval rescaled to the whole split."""
    import numpy as np

    n = len(y)
    keep = np.sort(np.random.default_rng([seed, n]).choice(n, size=rows, replace=False))

    def part(pair: tuple[np.ndarray, np.ndarray | None]) -> tuple[np.ndarray, np.ndarray | None]:
        return np.asarray(pair[0])[keep], None if pair[1] is None else np.asarray(pair[1])[keep]

    sign = 1.0 if METRICS[metric].greater_is_better else -1.0
    a, b = _point(metric, y, challenger, k), _point(metric, y, champion, k)  # the whole split's values
    delta = sign * (a - b)
    sub = paired_bootstrap(metric, np.asarray(y)[keep], part(challenger), part(champion), k,
                           confidence=confidence, n_boot=n_boot, seed=seed, max_rows=rows)
    scale = float(np.sqrt(rows / n))
    return a, b, delta, delta + scale * (sub[3] - sub[2]), delta + scale * (sub[4] - sub[2]), sub[5]


def _point(metric: str, y: np.ndarray, pair: tuple[np.ndarray, np.ndarray | None], k: int) -> float:
    """``metric`` of one model on all of ``y`` (rank-based for binary ROC AUC, equal to scikit-learn's)."""
    pred, proba = pair
    if metric == "roc_auc" and k == 2 and proba is not None:
        return _binary_auc(y, proba[:, 1])
    return float(METRICS[metric].fn(y, pred, proba, k))


def bootstrap_rows_note(n: int) -> str:
    """What the gate report says when the champion comparison used the m-out-of-n bootstrap ('' when not)."""
    from trainpipe.evaluation._intervals import MAX_ROWS

    if n <= MAX_ROWS:
        return ""
    return (f"The interval is an m-out-of-n paired bootstrap: resamples of a seeded random {MAX_ROWS:,} of the "
            f"{n:,} test rows, their spread rescaled by sqrt({MAX_ROWS:,}/{n:,}) to the whole split.")


class _WeightedAuc:
    """Binary ROC AUC of a bootstrap resample given as row counts (``numpy.bincount`` of its indices).

    The scores are sorted once; a resample's Mann-Whitney statistic is then summed over groups of tied scores
    (``positives in the group x (negatives below + half the negatives in it)``) in exact integer arithmetic.
    It equals :func:`_binary_auc` on ``y[idx], score[idx]`` bit for bit (there, average ranks make the same
    exact numerator, divided once by ``n1 * n0``), at a tenth of the cost: no sort per resample."""

    def __init__(self, y: np.ndarray, score: np.ndarray) -> None:
        import numpy as np

        order = np.argsort(score, kind="stable")
        ranked = score[order]
        self.order = order
        self.positive = (np.asarray(y)[order] == 1).astype(np.int64)
        self.starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # first row of each tie group

    def auc(self, counts: np.ndarray) -> float:
        import numpy as np

        w = counts[self.order].astype(np.int64)
        pos = np.add.reduceat(w * self.positive, self.starts)
        neg = np.add.reduceat(w, self.starts) - pos
        n1, n0 = int(pos.sum()), int(neg.sum())
        if n1 == 0 or n0 == 0:
            raise ValueError("one class only")
        below = np.cumsum(neg) - neg
        twice_u = int((2 * pos * below + pos * neg).sum())
        return float((twice_u / 2.0) / (n1 * n0))


def _binary_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic with average ranks for ties (equals sklearn's value)."""
    from scipy.stats import rankdata

    pos = y == 1
    n1 = int(pos.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        raise ValueError("one class only")
    ranks = rankdata(score)
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def compare_to_champion(metric: str, y: np.ndarray, challenger: tuple[np.ndarray, np.ndarray | None],
                        champion: tuple[np.ndarray, np.ndarray | None], k: int, *, version: str,
                        confidence: float, min_delta: float, n_boot: int = 1000, seed: int = 0,
                        alias: str = "production", note: str = "", task: Task | None = None) -> ChampionComparison:
    """The challenger against the champion on ``metric``; ``task`` gives the statistic (its
    :meth:`~trainpipe.tasks.Task.champion_statistic`; without one, the paired bootstrap over rows)."""
    statistic = paired_bootstrap if task is None else task.champion_statistic
    a, b, delta, lo, hi, used = statistic(metric, y, challenger, champion, k, confidence=confidence,
                                          n_boot=n_boot, seed=seed)
    passed = delta > min_delta and lo >= min_delta
    from trainpipe.tasks import Task as _Task

    if task is None or type(task).champion_statistic is _Task.champion_statistic:  # the paired bootstrap
        how = bootstrap_rows_note(len(y))
        note = f"{note} {how}".strip() if how else note
    return ChampionComparison(version, metric, a, b, delta, lo, hi, confidence, min_delta, used, passed, note,
                              alias)


def comparison_line(report: GateReport, model_name: str) -> str:
    """The console line saying what the challenger was compared with (alias and version) and the outcome."""
    c = report.champion
    if c is None:
        return f"gate: {report.champion_note.strip() or 'no champion to compare with'}"
    return (f"gate: compared with {model_name}@{c.champion_alias} (version {c.champion_version}) on {c.metric}: "
            f"challenger {c.challenger_value:.5g}, champion {c.champion_value:.5g}, delta {c.delta:+.4f} "
            f"({'beats it' if c.passed else 'does not beat it'})")


def _slice_reason(c: SliceCheck) -> str:
    where = f"gate.slices.{c.column}.{c.kind}.{c.metric}"
    if c.value is None:
        return f"slices of {c.column!r}: {c.note} ({where})"
    if c.kind == "min":
        return (f"slice {c.column}={c.worst}: {c.metric} = {c.value:.5g} is worse than the floor {c.bound:g} "
                f"({where})")
    return (f"slices of {c.column!r}: the {c.metric} gap between {c.best!r} and {c.worst!r} is {c.value:.5g}, "
            f"above the ceiling {c.bound:g} ({where})")


def _slices_markdown(checks: list[SliceCheck], table: Mapping[str, list[dict[str, Any]]]) -> list[str]:
    lines = ["## Slices (fairness)", "", "| column | rule | metric | bound | value | slice | result |",
             "|---|---|---|---|---|---|---|"]
    for c in checks:
        where = c.worst if c.kind == "min" else f"{c.best} vs {c.worst}"
        lines.append(f"| {c.column} | {c.kind} | {c.metric} | {c.bound:g} | {_fmt(c.value)} | {where or '-'} | "
                     f"{'pass' if c.passed else 'FAIL'}{(' — ' + c.note) if c.note else ''} |")
    lines.append("")
    for column, rows in table.items():
        metrics = [k for k in rows[0] if k not in ("slice", "count", "gated", "note")] if rows else []
        lines += [f"### {column}", "", "| slice | rows | " + " | ".join(metrics) + " | gated |",
                  "|---|---|" + "---|" * len(metrics) + "---|"]
        for r in rows:
            values = " | ".join(_fmt(r.get(m)) for m in metrics)
            gated = "yes" if r["gated"] else f"no ({r['note']})"
            lines.append(f"| {r['slice']} | {r['count']} | {values} | {gated} |")
        lines.append("")
    return lines


def check_slices(rules: Mapping[str, Any], test: Any, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
                 task: str, k: int) -> tuple[list[SliceCheck], dict[str, list[dict[str, Any]]]]:
    """The fairness gate: ``rules`` is ``gate.slices`` (column -> SliceGateConfig); ``test`` the test split
    whose rows ``y``/``pred``/``proba`` score. Slices are the evaluation's (its levels, binning and caps)."""
    from trainpipe.evaluation._evaluate import _slice_metrics

    checks: list[SliceCheck] = []
    table: dict[str, list[dict[str, Any]]] = {}
    for column, rule in rules.items():
        names = list(dict.fromkeys([*rule.min, *rule.max_gap]))
        rows = _slice_metrics(test[column], names, task, y, pred, proba, k)
        for r in rows:
            r["gated"], r["note"] = r["count"] >= rule.min_rows, ""
            if not r["gated"]:
                r["note"] = f"{r['count']} rows < min_rows {rule.min_rows}"
        table[column] = rows
        for metric in names:
            better = METRICS[metric].greater_is_better
            scored = [(r["slice"], float(r[metric])) for r in rows if r["gated"] and r.get(metric) is not None]
            undefined = [str(r["slice"]) for r in rows if r["gated"] and r.get(metric) is None]
            note = (f"{metric} undefined on {', '.join(undefined)} (e.g. one class only): not gated"
                    if undefined else "")
            if not scored:
                why = (f"no slice of {column!r} has both >= {rule.min_rows} rows and a defined {metric}, so the "
                       f"rule could not be checked; lower min_rows or remove the rule")
                for kind in ("min", "max_gap"):
                    if metric in getattr(rule, kind):
                        checks.append(SliceCheck(column, metric, kind, float(getattr(rule, kind)[metric]), None,
                                                 "", passed=False, note=why))
                continue
            ordered = sorted(scored, key=lambda sv: sv[1], reverse=better)  # best first
            (best, best_v), (worst, worst_v) = ordered[0], ordered[-1]
            if metric in rule.min:
                bound = float(rule.min[metric])
                ok = worst_v >= bound if better else worst_v <= bound
                checks.append(SliceCheck(column, metric, "min", bound, worst_v, str(worst), passed=ok, note=note))
            if metric in rule.max_gap:
                bound = float(rule.max_gap[metric])
                gap = abs(best_v - worst_v)
                checks.append(SliceCheck(column, metric, "max_gap", bound, gap, str(worst), str(best),
                                         passed=gap <= bound, note=note))
        for r in rows:  # JSON-friendly: numbers, not numpy scalars
            r["count"] = int(r["count"])
    return checks, table
