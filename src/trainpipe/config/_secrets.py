"""Redaction of secrets before anything is printed, written or logged.

One pass, :func:`scrub`, masks in any text: passwords and tokens in URIs (``u:pw@``, ``tok@``,
``?token=``), the values of secret-named environment variables (interpolated into the config, or
simply present in the environment), ``NAME_KEY=value`` assignments, and known token formats (GitHub,
AWS, Slack, OpenAI/Stripe-style ``sk-``, Google API keys, JWTs, ``Bearer``/``Basic`` credentials, PEM
private keys). :func:`redact` applies it to every string of a nested structure and masks the values of
secret-named keys. :func:`write_private_text` writes a file only its owner can read.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
REDACTED = "***"
#: secret-named environment variables shorter than this are not masked everywhere (``KEYBOARD=us``)
ENV_SECRET_MIN_LEN = 6
_URI_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]+):(?P<pw>[^@/\s]+)@")
_URI_TOKEN = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<token>[^:/@\s]+)@")
_QUERY_SECRET = re.compile(r"(?P<key>[?&][^=&\s]*(?:key|token|secret|password)[^=&\s]*=)[^&\s]+", re.IGNORECASE)
_ASSIGNMENT = re.compile(r"(?P<key>\b[A-Z][A-Z0-9_]*(?:KEY|TOKEN|SECRET|PASSWORD)[A-Z0-9_]*=)[^\s'\",;&]+")
#: known token formats, each replaced whole by REDACTED (a prefix kept where it names the scheme)
TOKEN_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL),
    re.compile(r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{20,}"),  # GitHub tokens
    re.compile(r"(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{20,}"),  # GitHub fine-grained tokens
    re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])"),  # AWS access key ids
    re.compile(r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,}"),  # Slack tokens
    re.compile(r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{16,}"),  # OpenAI / Anthropic style API keys
    re.compile(r"(?<![A-Za-z0-9])[rs]k_(?:live|test)_[A-Za-z0-9]{10,}"),  # Stripe keys
    re.compile(r"(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{35}"),  # Google API keys
    re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),  # JWT
)
_AUTH_HEADER = re.compile(r"(?P<scheme>\b(?:Bearer|Basic|Token)\s+)[A-Za-z0-9\-._~+/]{8,}=*", re.IGNORECASE)


#: also secret when they are a whole word of the name (``DB_PASS``, ``SMTP_PWD``, ``GCP_CREDENTIALS``,
#: ``BASIC_AUTH``), never as part of one: ``PWD`` (the shell's working directory), ``OLDPWD``, ``AUTHOR``
SECRET_WORDS = frozenset({"PASS", "PASSWD", "PWD", "PASSPHRASE", "CREDENTIAL", "CREDENTIALS", "AUTH", "DSN"})


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Cached: every scrub asks it of each environment variable's name (hundreds of times in one run)."""
    upper = name.upper()
    if any(marker in upper for marker in SECRET_MARKERS):
        return True
    words = [w for w in re.split(r"[^A-Z0-9]+", upper) if w]
    return len(words) > 1 and any(w in SECRET_WORDS for w in words)


def env_secret_values(environ: Mapping[str, str] | None = None,
                      min_len: int = ENV_SECRET_MIN_LEN) -> frozenset[str]:
    """Values of the secret-named variables in ``environ`` (default ``os.environ``) of ``min_len`` chars or more."""
    environ = os.environ if environ is None else environ
    return frozenset(v for k, v in environ.items()
                     if is_secret_name(k) and len(v) >= min_len and not v.isdigit())


def redact_uri(text: str) -> str:
    """``postgresql://u:pw@h/db`` -> ``postgresql://u:***@h/db``; ``https://tok@h`` and ``?token=x`` masked too."""
    text = _URI_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    text = _URI_TOKEN.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}{REDACTED}", text)


def _known(secrets: Iterable[str]) -> list[str]:
    """The values to mask: the ones given plus the environment's, longest first (a secret that contains
    another is masked whole)."""
    values = {s for s in secrets if s} | env_secret_values()
    values.discard(REDACTED)
    return sorted(values, key=len, reverse=True)


def _scrub(text: str, values: list[str]) -> str:
    for secret in values:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in TOKEN_PATTERNS:
        text = pattern.sub(REDACTED, text)
    text = _AUTH_HEADER.sub(lambda m: f"{m['scheme']}{REDACTED}", text)
    text = _ASSIGNMENT.sub(lambda m: f"{m['key']}{REDACTED}", text)
    return redact_uri(text)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret masked: ``secrets``, secret-named environment variables' values, credentials
    in URIs, ``API_KEY=...`` assignments and known token formats. For anything printed, written or logged."""
    return _scrub(str(text), _known(secrets))


def redact(value: Any, key: str = "", secrets: Iterable[str] = frozenset()) -> Any:
    """Copy of ``value`` with secret-named keys masked and :func:`scrub` applied to every string (``secrets``:
    values of secret-named environment variables the config used, masked wherever they occur)."""
    return _redact(value, key, _known(secrets))


def _redact(value: Any, key: str, values: list[str]) -> Any:
    if key and is_secret_name(key):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: _redact(v, str(k), values) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, "", values) for v in value]
    if isinstance(value, str):
        return _scrub(value, values)
    return value


def scrub_strings(value: Any, secrets: Iterable[str] = ()) -> Any:
    """Copy of ``value`` with :func:`scrub` applied to every string in it; keys are kept and never mask their
    values (for records such as run.json, whose ``key`` fields are cache keys, not secrets)."""
    values = _known(secrets)

    def walk(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        return _scrub(item, values) if isinstance(item, str) else item

    return walk(value)


def env_placeholders(value: Any, secrets: Iterable[str], environ: Mapping[str, str] | None = None) -> Any:
    """Copy of ``value`` with each secret value put back as the ``${NAME}`` it was interpolated from (the
    secret-named variable of ``environ`` holding it), else masked: a resolved config that can be saved and
    loaded again with the same environment, and holds no secret."""
    environ = os.environ if environ is None else environ
    by_value = {v: f"${{{k}}}" for k, v in sorted(environ.items()) if is_secret_name(k) and v}
    ordered = sorted((s for s in secrets if s), key=len, reverse=True)

    def walk(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        if isinstance(item, str):
            for secret in ordered:
                item = item.replace(secret, by_value.get(secret, REDACTED))
        return item

    return walk(value)


def write_private_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file in the same folder, then rename) with mode 0600:
    files that may hold config or error messages are for their owner only."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
