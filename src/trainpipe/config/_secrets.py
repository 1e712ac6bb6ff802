"""Redaction of secrets before anything is logged."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
REDACTED = "***"
_URI_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]+):(?P<pw>[^@/\s]+)@")
_URI_TOKEN = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<token>[^:/@\s]+)@")
_QUERY_SECRET = re.compile(r"(?P<key>[?&][^=&\s]*(?:key|token|secret|password)[^=&\s]*=)[^&\s]+", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def redact_uri(text: str) -> str:
    """``postgresql://u:pw@h/db`` -> ``postgresql://u:***@h/db``; ``https://tok@h`` and ``?token=x`` masked too."""
    text = _URI_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    text = _URI_TOKEN.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}{REDACTED}", text)


def redact(value: Any, key: str = "", secrets: frozenset[str] = frozenset()) -> Any:
    """Copy of ``value`` with secret-named keys masked, passwords in URIs removed, and every occurrence of
    ``secrets`` (values of secret-named environment variables the config used) masked."""
    if key and is_secret_name(key):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: redact(v, str(k), secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, "", secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            if secret:
                value = value.replace(secret, REDACTED)
        return redact_uri(value)
    return value
