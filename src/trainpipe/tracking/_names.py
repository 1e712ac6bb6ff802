"""MLflow-safe metric names built from data values (slice levels, column names), and readable run names.

MLflow (``mlflow/utils/validation.py``) accepts in a metric key only letters, digits, ``_ - . /`` and spaces
(colons too, except on Windows), at most 250 characters, and no key that changes under ``posixpath.normpath``
(no ``..`` or ``.`` path part, no leading ``/``, no ``//``). Values from the data can hold anything, so each
part is sanitised; the caller keeps the mapping from the key back to the original value.
"""

from __future__ import annotations

import hashlib
import re
import time

_BAD = re.compile(r"[^\w.\- ]")
MAX_KEY = 250


def safe_part(value: object, limit: int = 80) -> str:
    """One part of a key: characters MLflow refuses (and ``/``, the separator) become ``_``; a part longer than
    ``limit`` keeps its head and a short hash of the whole (two long values stay apart)."""
    text = _BAD.sub("_", str(value)).strip()
    if text in ("", ".", ".."):
        return "_" if not text else text.replace(".", "_")
    if len(text) > limit:
        text = f"{text[: limit - 9]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return text


def metric_key(*parts: object, prefix: str = "") -> str:
    """``prefix`` + the sanitised parts joined by ``/`` (the MLflow UI groups charts on it), at most 250
    characters (MLflow's limit; each part is capped, see :func:`safe_part`)."""
    key = prefix + "/".join(safe_part(p) for p in parts)
    if len(key) > MAX_KEY:
        key = f"{key[: MAX_KEY - 9].rstrip('/')}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    return key


def slice_metric_key(split: str, column: str, level: object, metric: str) -> str:
    """``test.slice.sex/Female.roc_auc``: the split, the column and its level, the metric."""
    return f"{split}.slice.{safe_part(column)}/{safe_part(level)}.{safe_part(metric)}"


def run_name(pipeline: str, model_type: str, trigger: str, now: float | None = None) -> str:
    """``churn-XGBClassifier-manual-20250101-120000-3f2a``: what ran, how it was started and when, readable in
    the runs table; the short random tail keeps two runs started in the same second apart."""
    import uuid

    short = model_type.rsplit(".", 1)[-1] or model_type
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    return f"{pipeline}-{short}-{trigger}-{stamp}-{uuid.uuid4().hex[:4]}"


__all__ = ["metric_key", "run_name", "safe_part", "slice_metric_key"]
