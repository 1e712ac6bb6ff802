"""Load a pipeline file: YAML, profile overlay, ``${ENV}`` interpolation, ``--set`` overrides.

Everything is validated here, before any data is read. Errors carry the key path, what was found,
what was expected and a did-you-mean where a key looks like a typo.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from trainpipe._exceptions import ConfigError
from trainpipe.config._schema import PipelineConfig
from trainpipe.config._secrets import is_secret_name
from trainpipe.config._yaml import MAX_BYTES, YamlLimitError, load_yaml, unquoted_env_hint

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
PROFILE_ENV = "TRAINPIPE_PROFILE"


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config plus where it came from."""

    config: PipelineConfig
    path: Path | None
    base_dir: Path
    profile: str | None
    raw: dict[str, Any]
    secret_values: frozenset[str] = frozenset()

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)


def config_hash(config: PipelineConfig) -> str:
    """sha256 of the canonical JSON of the resolved config."""
    text = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def load_config(
    path: str | Path,
    *,
    profile: str | None = None,
    overrides: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Read, merge, interpolate and validate a pipeline file."""
    env = os.environ if env is None else env
    path = Path(path)
    raw = _read_yaml(path)
    profile = profile or env.get(PROFILE_ENV) or None
    if profile:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", profile):
            raise ConfigError(f"profile {profile!r}: a profile is a plain name (letters, digits, '_', '-', '.'), "
                              f"the middle part of {path.stem}.NAME{path.suffix} next to the pipeline file.")
        profile_path = path.with_name(f"{path.stem}.{profile}{path.suffix}")
        if not profile_path.is_file():
            raise ConfigError(
                f"profile {profile!r}: expected the overlay file {profile_path}, which does not exist. "
                f"Create it or drop --profile / {PROFILE_ENV}."
            )
        raw = deep_merge(raw, _read_yaml(profile_path))
    for item in overrides:
        apply_override(raw, item)
    used: set[str] = set()
    raw = _interpolate(raw, env, (), used)
    config = validate_config(raw, source=str(path), overrides=overrides)
    secrets = frozenset(env[name] for name in used if is_secret_name(name) and len(env[name]) >= 4)
    return LoadedConfig(config=config, path=path.resolve(), base_dir=path.resolve().parent,
                        profile=profile, raw=raw, secret_values=secrets)


def config_from_dict(data: Mapping[str, Any], *, base_dir: str | Path = ".") -> LoadedConfig:
    """Validate an in-memory config (tests, notebooks)."""
    raw = copy.deepcopy(dict(data))
    config = validate_config(raw, source="<dict>")
    return LoadedConfig(config=config, path=None, base_dir=Path(base_dir).resolve(), profile=None, raw=raw)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"{path}: pipeline file not found. Check the path (cwd is {Path.cwd()}).")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; expected a YAML pipeline file such as {path}/pipeline.yaml")
    if not path.is_file():  # a FIFO would block the read forever, a device would never end
        raise ConfigError(f"{path}: not a regular file (a pipe, socket or device); expected a YAML pipeline file. "
                          "Write the config to a file and pass its path.")
    try:
        with path.open("rb") as handle:  # read at most one byte past the limit, whatever the file's size
            data_bytes = handle.read(MAX_BYTES + 1)
        text = data_bytes.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the pipeline file ({exc}).") from exc
    if len(data_bytes) > MAX_BYTES:
        raise ConfigError(f"{path}: the pipeline file is larger than {MAX_BYTES:,} bytes (1 MiB), the limit. "
                          "A pipeline file holds settings, not data: point data.source at the data instead.")
    try:
        data = load_yaml(text)
    except YamlLimitError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        context = ""
        lines = [mark.line + 1] if mark is not None else []
        if exc.context and exc.context_mark is not None:
            cm = exc.context_mark
            context = f" ({exc.context} at line {cm.line + 1}, column {cm.column + 1})"
            lines.append(cm.line + 1)
        hint = unquoted_env_hint(text, *lines)
        raise ConfigError(f"{path}: invalid YAML{where}: {exc.problem}{context}. Fix the syntax there.{hint}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        raise ConfigError(f"{path}: the file is empty; expected a mapping with name, data and model.")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping at the top level (name:, data:, model:), got {type(data).__name__}."
        )
    return data


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``overlay`` over ``base``: mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one ``dotted.key=value`` override; the value is parsed as YAML (``8``, ``[a, b]``, ``null``)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. model.params.max_depth=8")
    parts = key.split(".")
    value = _override_value(text, parts)
    node: dict[str, Any] = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"--set {item!r}: {where} is a {type(child).__name__}, not a section.")
        node = child
    node[parts[-1]] = value


def _override_value(text: str, parts: Sequence[str]) -> Any:
    """A ``--set`` value: YAML (``8``, ``[a, b]``, ``null``), or the text itself where the key takes a string
    (``name=2024``, ``gate.thresholds.roc_auc=>= 0.8``) or the text is not YAML at all."""
    if not text.strip():
        return ""
    try:
        value = load_yaml(text)
    except (yaml.YAMLError, YamlLimitError):
        return text.strip()
    if value is not None and not isinstance(value, str) and _takes_string(parts):
        return text.strip()
    return value


def _takes_string(parts: Sequence[str]) -> bool:
    """Whether the schema types the key at ``parts`` as a string (``str`` or ``str | None``)."""
    annotation: Any = PipelineConfig
    in_mapping = False
    for part in parts:
        if in_mapping:  # a user's key in dict[str, X]: the type stays X
            in_mapping = False
            continue
        current = _unwrap(annotation)
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return False
        field = current.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if getattr(_unwrap(annotation), "__origin__", None) is dict:
            annotation = _unwrap(annotation).__args__[1]
            in_mapping = True
    return not in_mapping and (annotation is str or set(getattr(annotation, "__args__", ())) == {str, type(None)})


def _interpolate(value: Any, env: Mapping[str, str], path: tuple[str, ...], used: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, env, (*path, str(k)), used) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, (*path, str(i)), used) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                used.add(name)
                return env[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{'.'.join(path)}: environment variable {name} is not set. "
                f"Export it, or write ${{{name}:-default}} to give a default."
            )

        whole = _ENV_RE.fullmatch(value)
        text = _ENV_RE.sub(repl, value)
        # A value that is only "${VAR}" keeps the YAML type of what VAR holds (8 -> int).
        if whole is not None:
            try:
                return load_yaml(text) if text.strip() else text
            except (yaml.YAMLError, YamlLimitError):
                return text
        return text
    return value


def validate_config(raw: Mapping[str, Any], *, source: str, overrides: Sequence[str] = ()) -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(err) + _from_override(err, overrides) for err in exc.errors()]
        count = len(lines)
        head = f"{source}: {count} problem{'s' if count > 1 else ''} in the pipeline config:"
        raise ConfigError("\n".join([head, *(f"  - {line}" for line in lines)])) from None


def _from_override(err: Any, overrides: Sequence[str]) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key == loc or key.startswith(loc + ".") or loc.startswith(key + "."):
            return f" (from --set {item})"
    return ""


def _describe(err: Any) -> str:
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _model_at(PipelineConfig, loc[:-1])
        hint = ""
        if parent is not None:
            known = list(parent.model_fields)
            close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else f" Known keys here: {', '.join(known)}."
        return f"{key}: unknown key.{hint}"
    if kind == "missing":
        return f"{key}: required key is missing."
    got = err.get("input")
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    msg = msg.rstrip(".")
    # A whole section failed a cross-field check (its input is the section's mapping): the message says
    # what it found. So does a message that already quotes the value.
    if not isinstance(got, dict | list) and repr(got) not in msg:
        msg += f" (got {got!r})"
    msg += "."
    if kind == "literal_error" and isinstance(got, str):
        choices = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
        close = difflib.get_close_matches(got, choices, n=1, cutoff=0.5)
        if close:
            msg += f" Did you mean {close[0]!r}?"
    return f"{key}: {msg}" if key else msg


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class found by following ``loc`` from ``model``; a part after a mapping-valued
    field (``validation.columns.<name>``, ``tuning.space.<name>``) is a key of that mapping."""
    current: Any = model
    mapping_key = False
    for part in loc:
        if mapping_key:  # the user's name for an entry of dict[str, Model]: the model stays the same
            mapping_key = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _unwrap(field.annotation)
        if current is None:
            return None
        if getattr(current, "__origin__", None) is dict:
            current = _unwrap(current.__args__[1])
            mapping_key = True
    if mapping_key:
        return None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _unwrap(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", None)
    if args and type(None) in args:  # Optional[X]
        for arg in args:
            if arg is not type(None):
                return arg
    return annotation
