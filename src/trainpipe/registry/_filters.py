"""MLflow search filter strings built from user-given names, quoted so that no name can break them.

MLflow's filter parser (``mlflow/utils/search_utils.py``) takes a string value between single or double quotes
and only trims the two quote characters: it has no escape for a quote inside (``'churn''s'`` reads as
``churn''s``). A value without ``'`` is quoted with ``'``, one with ``'`` but no ``"`` with ``"``; a value
holding both cannot be written in a filter at all, and callers then filter on their side (see
:func:`search_model_versions`). Comparisons are ``=``, never ``LIKE``, so ``%`` and ``_`` match themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


def filter_value(value: str) -> str | None:
    """``value`` as a quoted MLflow filter literal, or None when no quoting can express it."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


def equals(key: str, value: str) -> str | None:
    """``key = <quoted value>``, or None when ``value`` cannot be quoted (see :func:`filter_value`)."""
    quoted = filter_value(value)
    return None if quoted is None else f"{key} = {quoted}"


def _all_pages(search: Any, filter_string: str | None) -> list[Any]:
    found: list[Any] = []
    token = None
    while True:
        page = search(filter_string=filter_string, max_results=1000, page_token=token)
        found.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return found


def search_model_versions(client: MlflowClient, name: str, run_id: str | None = None) -> list[ModelVersion]:
    """Every version of registered model ``name`` (of one run when ``run_id`` is given), all pages, whatever
    characters the name holds; results are checked against the exact name and run id."""
    clauses = [equals("name", name)]
    if run_id is not None:
        clauses.append(equals("run_id", run_id))
    usable = [c for c in clauses if c is not None]
    found = _all_pages(client.search_model_versions, " AND ".join(usable) or None)
    return [v for v in found if v.name == name and (run_id is None or v.run_id == run_id)]


__all__ = ["equals", "filter_value", "search_model_versions"]
