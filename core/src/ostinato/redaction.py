"""Hiding secrets in configuration values before they are shown (``ostinato config``).

A masked value shows that something is set, never what: ``postgresql://app:***@db/x``,
``Server=db;UID=sa;PWD=***``, ``AccountName=a;AccountKey=***``. Covered: passwords in URLs
(``user:password@``) and in ``key=value`` connection strings (libpq, ODBC, Azure Storage:
``password``, ``pwd``, ``AccountKey``, ``SharedAccessKey``, ``SharedAccessSignature``, a SAS
``sig``), and whole settings whose name says they are secret (``*password*``, ``*key*``,
``*secret*``, ``*token*``, ``*credential*``, ``*sas*``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: What a hidden value is shown as.
MASK = "***"

_SECRET_SETTING = re.compile(
    r"password|passwd|pwd|secret|token|credential|(^|_)key($|_)|account_key|(^|_)sas($|_)",
    re.IGNORECASE,
)

# user:password@ in a URL
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)[^@/\s]*(?=@)")

# SharedAccessSignature=sv=...&sig=...; runs to the next ';'
_SAS_SETTING = re.compile(r"(?P<head>\bSharedAccessSignature\s*=\s*)[^;]*", re.IGNORECASE)

# key=value (libpq, ODBC, Azure, URL query): quoted, {braced} or up to ; & or whitespace
_SECRET_PAIR = re.compile(
    r"(?P<head>(?<![A-Za-z0-9_])(?:password|passwd|pwd|accountkey|sharedaccesskey|sig)\s*=\s*)"
    r"(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\{(?:[^}]|\}\})*\}|[^;&\s]*)",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """``text`` with the passwords and keys inside it masked."""
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    text = _SAS_SETTING.sub(lambda m: m["head"] + MASK, text)
    return _SECRET_PAIR.sub(lambda m: m["head"] + MASK, text)


def redact_setting(name: str, value: Any) -> Any:
    """A setting's value as it may be shown: masked whole if ``name`` is a secret's, text
    with secrets inside it masked, anything else unchanged. Unset values stay as they are."""
    if value is None or value == "":
        return value
    if _SECRET_SETTING.search(name):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Every value of ``settings`` through :func:`redact_setting`."""
    return {name: redact_setting(name, value) for name, value in settings.items()}


__all__ = ["MASK", "redact_setting", "redact_settings", "redact_text"]
