"""The one rule for the names of models and versions, wherever they come in (the API, the
console, the registries, prediction logs, the CLI).

A name travels into file names (reports, prediction drops), registry tags, HTTP headers
and the audit trail: letters, digits, '.', '_' and '-', starting with a letter or digit,
at most 128 characters. That refuses path parts (`../../etc/passwd`), control and
bidirectional-override characters, spaces and megabyte-long names. A registry whose
names need more (MLflow allows spaces) has the version refused with this reason."""

from __future__ import annotations

import re

from governance.domain.errors import MalformedInputError

MAX_LENGTH = 128
PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_LENGTH - 1}}}$"
_NAME = re.compile(PATTERN)


def checked(field: str, value: str) -> str:
    """`value` when it is a valid model or version name; MalformedInputError naming the
    field and the pattern otherwise (a 400 over HTTP, exit 2 in the CLI)."""
    if isinstance(value, str) and _NAME.fullmatch(value):
        return value
    shown = ascii(value[:40]) + ("…" if len(value) > 40 else "") if isinstance(value, str) else "?"
    size = f" ({len(value):,} characters)" if isinstance(value, str) and len(value) > 40 else ""
    raise MalformedInputError(
        field,
        f"is {shown}{size}: not a valid name",
        f"use 1 to {MAX_LENGTH} letters, digits, '.', '_' or '-', starting with a letter or "
        f"digit (pattern {PATTERN})",
    )


def checked_model_version(model: str, version: str) -> tuple[str, str]:
    return checked("model", model), checked("version", version)
