"""Turn a trainpipe model directory into an MLflow pyfunc model folder (signature, input example, card)."""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import importlib.util
import json
import re
import shutil
import threading
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._version import __version__

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.models.signature import ModelSignature

    from trainpipe.config import ColumnCheck
    from trainpipe.models import ModelSpec, TrainedModel

_COMMON_LIBS = ("mlflow", "scikit-learn", "skops", "pandas", "numpy", "pyarrow")
_PACKAGE = "trainpipe"
# what the pyfunc wrapper calls: TrainedModel.load and predict_frame
_ENTRY_MODULES = ("trainpipe.models._trained", "trainpipe.registry._predict")
CODE_CONFIG_KEY = "trainpipe_code"  # model_config key: the bundled package's name


def input_types(spec: ModelSpec) -> dict[str, str]:
    """MLflow column types for the raw input columns, as in training: NumPy integer columns (which cannot
    hold missing values) ``long``, other numbers ``double``, booleans ``boolean``, the rest ``string``.

    pandas' nullable integers (``Int64``, ``UInt8``, ``int64[pyarrow]``...; a Parquet integer column with
    missing values reads as one) are ``double``: with a missing value they become floats, and MLflow
    refuses a float for a ``long`` column, in the input example and at serving time alike.
    """
    out: dict[str, str] = {}
    for col in spec.features.columns:
        raw = spec.input_dtypes.get(col, "object")
        dtype = raw.lower()
        if col in spec.features.text:
            out[col] = "string"
        elif dtype.startswith("bool"):
            out[col] = "boolean"
        elif raw.startswith(("Int", "UInt")) or (dtype.startswith(("int", "uint")) and "[pyarrow]" in dtype):
            # nullable: may hold <NA>
            out[col] = "double"
        elif dtype.startswith(("int", "uint")):
            out[col] = "long"
        elif dtype.startswith("float"):
            out[col] = "double"
        elif dtype.startswith("datetime"):
            out[col] = "datetime"
        else:
            out[col] = "string"
    return out


def build_signature(spec: ModelSpec, output: pd.DataFrame, optional: Mapping[str, str] | None = None,
                    params: Mapping[str, Any] | None = None) -> ModelSignature:
    """The signature: the raw input columns, then ``optional`` ones (name -> MLflow type, not required: e.g. a
    ranking model's item column) and the ``params`` predict takes (name -> default: e.g. ``top_k``)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema([*(ColSpec(kind, name) for name, kind in input_types(spec).items()),
                     *(ColSpec(kind, name, required=False) for name, kind in (optional or {}).items())])
    param_schema = ParamSchema([ParamSpec(name, "long" if isinstance(value, int) else "double" if isinstance(
        value, float) else "string", value) for name, value in params.items()]) if params else None
    outputs = Schema([ColSpec("double" if str(output[c].dtype).startswith(("float", "int")) else "string", c)
                      for c in output.columns])
    if param_schema is None:
        return ModelSignature(inputs=inputs, outputs=outputs)
    return ModelSignature(inputs=inputs, outputs=outputs, params=param_schema)


def example_frame(spec: ModelSpec, rows: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    from trainpipe.registry._predict import check_input

    types = input_types(spec)
    schema = [{"name": k, "type": v, "required": True} for k, v in types.items()]
    return check_input(rows.head(n)[list(types)].reset_index(drop=True), schema, "input example")


def pip_requirements(family: str, model_type: str | None = None, members: Sequence[str] = ()) -> list[str]:
    """The served model's ``requirements.txt``: exact pins of the installed libraries inference needs, the common
    ones plus what the model's family declares (``ModelFamily.pip_requirements``; e.g. the first installed of
    ``xgboost-cpu`` and ``xgboost``, never both, since they hold the same module).

    trainpipe itself is not among them: its inference code travels with the model (see
    :func:`write_inference_code`), so the list installs from a public index.
    """
    from trainpipe.models import family_for
    from trainpipe.models._families import family_named
    from trainpipe.models._family import installed_pins

    found = family_for(model_type) if model_type is not None else family_named(family)
    reqs = installed_pins(_COMMON_LIBS) + (found.pip_requirements() if found is not None else [])
    for member in dict.fromkeys(members):  # an ensemble (tuning.ensemble) needs each member family's libraries
        reqs += family_for(member).pip_requirements()
    # a CPU build of torch reports "2.13.0+cpu"; pinning that would pull a CUDA build on re-create
    return list(dict.fromkeys(r.split("+")[0] for r in reqs))


def _module_file(module: str) -> Path | None:
    """The source file of a trainpipe module, found on disk: ``importlib.util.find_spec`` would import its parent
    packages (``trainpipe.models.torch`` imports torch)."""
    parts = module.split(".")
    if parts[0] != _PACKAGE:
        return None
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts[1:])
    for candidate in (path / "__init__.py", path.with_name(f"{path.name}.py")):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement at any depth (function and class bodies, branches, ``try``, ``with``, ``match``), without
    descending into expressions (imports are statements); the body of ``if TYPE_CHECKING:`` is left out."""
    for stmt in body:
        yield stmt
        if not (isinstance(stmt, ast.If) and _is_type_checking(stmt)):
            yield from _statements(getattr(stmt, "body", []))
        yield from _statements(getattr(stmt, "orelse", []))
        yield from _statements(getattr(stmt, "finalbody", []))
        for handler in getattr(stmt, "handlers", []):
            yield from _statements(handler.body)
        for case in getattr(stmt, "cases", []):
            yield from _statements(case.body)


def _imported_names(module: str, source: str, is_package: bool) -> Iterator[tuple[str, str | None, int, bool]]:
    """(module, name, line, absolute) for every ``trainpipe`` import outside ``if TYPE_CHECKING:`` blocks, at any
    depth (inference imports lazily inside functions); ``name`` is the ``from X import name`` name, else None."""
    base = module.split(".") if is_package else module.split(".")[:-1]
    for stmt in _statements(ast.parse(source).body):
        if isinstance(stmt, ast.Import):
            yield from ((a.name, None, stmt.lineno, True) for a in stmt.names if a.name.split(".")[0] == _PACKAGE)
        elif isinstance(stmt, ast.ImportFrom):
            target = stmt.module or ""
            if stmt.level:
                target = ".".join([*base[:len(base) - stmt.level + 1], *([target] if target else [])])
            if target.split(".")[0] == _PACKAGE:
                yield from ((target, a.name, stmt.lineno, not stmt.level) for a in stmt.names)


@dataclass(frozen=True)
class _Bundled:
    path: Path | None  # None: a package on the way to a needed module, bundled as an empty one
    import_lines: tuple[int, ...] = ()  # the lines of its absolute ``trainpipe`` imports (renamed when bundled)


def _closure() -> dict[str, _Bundled]:
    needed: dict[str, _Bundled] = {}
    todo = list(_ENTRY_MODULES)
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for i in range(1, len(parts)):
            needed.setdefault(".".join(parts[:i]), _Bundled(None))
        if module in needed and needed[module].path is not None:
            continue
        path = _module_file(module)
        if path is None:
            raise RuntimeError(f"trainpipe's inference imports {module}, which is not installed with trainpipe")
        lines = []
        for target, name, line, absolute in _imported_names(module, path.read_text(encoding="utf-8"),
                                                             path.name == "__init__.py"):
            submodule = f"{target}.{name}"
            # ``from pkg import sub`` needs the submodule; ``from pkg import Name`` needs pkg's own source
            todo.append(submodule if name is not None and _module_file(submodule) is not None else target)
            if absolute:
                lines.append(line)
        needed[module] = _Bundled(path, tuple(sorted(set(lines))))
    return needed


_CLOSURE_CACHE = "trainpipe-inference-closure.json"  # in the package's __pycache__, beside Python's bytecode


def _package_dir() -> Path | None:
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _sources_key(root: Path) -> str:
    """A hash of every ``.py`` file's path, size and modification time under ``root`` (as Python keys its
    bytecode cache): any edited, added or removed module gives a new key."""
    import os

    entries = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(folder, name))
                entries.append(f"{os.path.relpath(os.path.join(folder, name), root)}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def _cached_closure(cache_dir: Path | None = None) -> dict[str, _Bundled]:
    """:func:`_closure`, kept across processes in ``cache_dir`` (default ``trainpipe/__pycache__``) while no
    trainpipe source changed: parsing the ~60 modules costs ~0.1 s CPU per registered model, checking the key
    ~2 ms. A cache that cannot be read or written (a read-only install) is skipped: the closure is computed."""
    root = _package_dir()
    if root is None:
        return _closure()
    key, cache = _sources_key(root), (cache_dir or root / "__pycache__") / _CLOSURE_CACHE
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        stored = json.loads(cache.read_text(encoding="utf-8"))
        if stored["key"] == key:
            found = {module: _Bundled(None if rel is None else root / rel, tuple(int(n) for n in lines))
                     for module, (rel, lines) in stored["modules"].items()}
            # what gets bundled into a model folder: trainpipe modules' own sources, nothing else (a cache
            # edited to name another file is recomputed, not followed)
            if all(_is_module_source(root, module, b.path) for module, b in found.items()):
                return found
    found = _closure()
    with contextlib.suppress(OSError, ValueError):
        modules = {module: [None if b.path is None else b.path.relative_to(root).as_posix(), list(b.import_lines)]
                   for module, b in found.items()}
        cache.parent.mkdir(exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{uuid.uuid4().hex[:8]}")
        try:
            tmp.write_text(json.dumps({"key": key, "modules": modules}), encoding="utf-8")
            tmp.replace(cache)
        finally:
            tmp.unlink(missing_ok=True)
    return found


def _is_module_source(root: Path, module: str, path: Path | None) -> bool:
    """Whether ``path`` is the source file of trainpipe module ``module`` under ``root`` (or None)."""
    if path is None:
        return True
    parts = module.split(".")
    if parts[0] != _PACKAGE or any(not p.isidentifier() for p in parts):
        return False
    expected = {root.joinpath(*parts[1:]).with_suffix(".py"), root.joinpath(*parts[1:], "__init__.py")}
    return path in expected and path.is_file()


def inference_modules() -> dict[str, bool]:
    """The import closure of trainpipe's inference (``TrainedModel.load`` and ``predict_frame``): module name ->
    whether its own source is needed. Lazy imports inside functions count; imports under ``TYPE_CHECKING`` do
    not. A package's ``__init__`` is needed only when a name other than a submodule is imported from it;
    otherwise the bundle holds an empty one (``trainpipe/__init__`` and ``registry/__init__`` import far
    more than inference needs)."""
    return {module: found.path is not None for module, found in _cached_closure().items()}


_IMPORT_LINE = re.compile(rf"^(\s*)(from|import)(\s+){_PACKAGE}(?=[\s.])", re.MULTILINE)


@functools.lru_cache(maxsize=1)
def _bundle_sources() -> tuple[str, tuple[tuple[str, str], ...]]:
    """(package name, ((relative path, renamed source)...)): read, renamed and hashed once per process."""
    sources: dict[str, str] = {}
    for module, found in sorted(_cached_closure().items()):
        parts = module.split(".")[1:]
        if found.path is None:
            sources[Path(*parts, "__init__.py").as_posix()] = (
                f'"""{module}, as bundled with a registered model: only the modules inference imports."""\n')
            continue
        rel = Path(*parts, "__init__.py") if found.path.name == "__init__.py" else \
            Path(*parts[:-1], f"{parts[-1]}.py")
        text = found.path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for line in found.import_lines:
            if not _IMPORT_LINE.match(lines[line - 1]):
                raise RuntimeError(
                    f"bundling trainpipe's inference code: the import at {found.path}:{line} cannot be renamed; "
                    "start the line with `from trainpipe.x import ...` or `import trainpipe.x` (one module)")
        sources[rel.as_posix()] = text
    digest = hashlib.sha256(json.dumps(sources, sort_keys=True).encode()).hexdigest()[:12]
    name = f"{_PACKAGE}_inference_{digest}"
    renamed = {rel: _IMPORT_LINE.sub(rf"\1\2\3{name}", text) for rel, text in sources.items()}
    renamed["__init__.py"] += f"\n__version__ = {__version__!r}  # the trainpipe that saved the model\n"
    return name, tuple(renamed.items())


def write_inference_code(folder: Path) -> str:
    """Write trainpipe's inference modules into ``folder`` as one package renamed after their content hash
    (``trainpipe_inference_<hash>``) and return the package's name.

    The copy is the code this model was saved with. Its own name keeps it apart from an installed trainpipe
    (loading the model in a process that runs trainpipe does not swap the modules under it) and from the
    bundled code of models saved by other trainpipe versions in the same process.
    """
    name, sources = _bundle_sources()
    for rel_name, text in sources:
        target = folder / name / rel_name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return name


_pins_lock = threading.Lock()
_pins_depth = 0
_pins_saved: Any = None


@contextlib.contextmanager
def _pins_taken_from_this_environment() -> Iterator[None]:
    """Skip MLflow's check that the model's pip requirements match the installed packages.

    ``pip_requirements`` pins exactly the versions installed here, so the check cannot find a mismatch,
    and it costs 0.4 s: it maps every installed distribution to its modules. The hook is swapped for a
    no-op while any save is in progress (counted, so overlapping saves in threads restore it once, last);
    without the hook (another MLflow version) the check simply runs.
    """
    global _pins_depth, _pins_saved
    import mlflow.utils.environment as env

    with _pins_lock:
        if _pins_depth == 0:
            _pins_saved = getattr(env, "warn_dependency_requirement_mismatches", None)
            if _pins_saved is not None:
                env.warn_dependency_requirement_mismatches = _no_check
        _pins_depth += 1
    try:
        yield
    finally:
        with _pins_lock:
            _pins_depth -= 1
            if _pins_depth == 0 and _pins_saved is not None:
                env.warn_dependency_requirement_mismatches = _pins_saved
                _pins_saved = None


def _no_check(*args: Any, **kwargs: Any) -> None:
    return None


def save_pyfunc(model: TrainedModel, model_dir: Path, target: Path, *, example_rows: pd.DataFrame,
                extra_artifacts: Mapping[str, Path], checks: Mapping[str, ColumnCheck] | None = None,
                label: str | None = None) -> dict[str, Any]:
    """Write the pyfunc folder to ``target`` atomically; return the signature's input schema (as dicts).

    ``checks`` (``validation.columns``; ``label`` is the target column, left out) travel with the model as the
    ``input_checks`` artifact, which ``trainpipe predict`` applies (see :mod:`trainpipe.registry._input_checks`).
    """
    import tempfile

    from trainpipe.registry._input_checks import ARTIFACT, checks_payload, write_checks

    with tempfile.TemporaryDirectory(prefix="trainpipe-checks-") as folder:
        stored = write_checks(checks_payload(checks or {}, label), Path(folder))
        return _save_pyfunc(model, model_dir, target, example_rows=example_rows,
                            extra_artifacts={**extra_artifacts, ARTIFACT: stored})


def _save_pyfunc(model: TrainedModel, model_dir: Path, target: Path, *, example_rows: pd.DataFrame,
                 extra_artifacts: Mapping[str, Path]) -> dict[str, Any]:
    import tempfile

    import mlflow.pyfunc

    from trainpipe.registry._predict import predict_frame

    # the file's path only: importing it would run its mlflow.models.set_model() in this process
    spec = importlib.util.find_spec("trainpipe.registry._pyfunc_model")
    assert spec is not None and spec.origin is not None
    code_file = spec.origin

    example = example_frame(model.spec, example_rows)
    kind = model.task.kind
    signature = build_signature(model.spec, predict_frame(model, example), optional=kind.optional_inputs(model),
                                params=kind.serving_params(model))
    tmp = target.with_name(f".tmp-{target.name}-{uuid.uuid4().hex[:6]}")
    try:
        with warnings.catch_warnings(), _pins_taken_from_this_environment(), \
                tempfile.TemporaryDirectory(prefix="trainpipe-code-") as code_dir:
            package = write_inference_code(Path(code_dir))
            warnings.simplefilter("ignore", UserWarning)  # MLflow's advice about type hints on predict
            mlflow.pyfunc.save_model(
                path=str(tmp), python_model=code_file, code_paths=[str(Path(code_dir) / package)],
                model_config={CODE_CONFIG_KEY: package},
                artifacts={"model_dir": str(model_dir), **{k: str(v) for k, v in extra_artifacts.items()}},
                signature=signature, input_example=example,
                pip_requirements=pip_requirements(model.spec.family, model.spec.model_type,
                                                  members=getattr(model.adapter, "member_types", ())),
            )
        if target.exists():
            shutil.rmtree(target)
        tmp.replace(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"inputs": signature.inputs.to_dict()}
