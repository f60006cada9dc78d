"""What every request body, response and parameter of the API shares: camelCase bodies that
refuse unknown fields and NUL characters, typed response schemas made from the services'
records, and the largest numbers the databases take."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Self

import msgspec

from governance.domain.errors import InputError

Json = dict[str, Any]
MiB = 1024 * 1024
# The largest page offset: SQLite and PostgreSQL take a 64-bit OFFSET, and a larger one
# must be refused (400), not fail in the database driver (500).
MAX_OFFSET = 2**63 - 1
# The largest row id: ids are PostgreSQL `integer`s, so a larger one is refused (400) rather
# than failing in the driver (500).
MAX_ROW_ID = 2**31 - 1


def refuse_nul(fields: Iterable[tuple[str, object]]) -> None:
    """Refuse text with a NUL character (422), the same on every backend: PostgreSQL can
    neither store nor compare one, and its driver failed on it (500)."""
    for name, value in fields:
        if isinstance(value, str) and "\x00" in value:
            raise InputError(name, "contains a NUL character", "send the text without it")


class Camel(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """Request bodies: camelCase on the wire, unknown fields refused with their name, and
    no NUL in text."""

    def __post_init__(self) -> None:
        values = (getattr(self, name) for name in self.__struct_fields__)
        refuse_nul(zip(self.__struct_encode_fields__, values, strict=True))


class Response(msgspec.Struct, frozen=True):
    """A response schema, typed so that the OpenAPI document shows it. Its fields are named
    like those of the service's record it is made from (`from_record`); this base keeps the
    names on the wire as they are (the people answers were snake_case before the API took
    camelCase, and clients read them so)."""

    @classmethod
    def from_record(cls, record: object) -> Self:
        """The schema of a service's record (a dataclass or any object with these fields):
        each field taken by name, so a schema can leave out what the wire must not show."""
        return cls(**{name: getattr(record, name) for name in cls.__struct_fields__})

    @classmethod
    def from_records(cls, records: Iterable[object]) -> list[Self]:
        """The schemas of a service's list of records, in its order: what a listing answers."""
        return [cls.from_record(record) for record in records]


class CamelResponse(Response, frozen=True, rename="camel"):
    """A response schema that is camelCase on the wire, like the request bodies."""


# --- responses made from records that hold records -------------------------------------


class NestedResponse(CamelResponse, frozen=True):
    """A camelCase response schema whose fields hold other schemas (a request's signatures,
    a model's versions): made from a record and the records inside it, each field taken by
    name at every depth, so each inner schema, too, leaves out what the wire must not show."""

    @classmethod
    def from_record(cls, record: object) -> Self:
        return msgspec.convert(record, cls, from_attributes=True)
