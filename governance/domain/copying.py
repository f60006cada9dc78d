"""Records made from objects that carry the records' fields under the same names: an ORM
row and the record the store answers with, a record and a narrower view of it. One copy by
name, so a field added to both sides needs no third edit."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

RecordT = TypeVar("RecordT", bound="DataclassInstance")


def copied(kind: type[RecordT], source: object, **changed: Any) -> RecordT:
    """A `kind` whose every field is `source`'s attribute of the same name, but for those in
    `changed` (a tuple where the row keeps a list, a value the source names otherwise)."""
    values = {f.name: getattr(source, f.name) for f in fields(kind) if f.name not in changed}
    return kind(**values, **changed)
