"""What comes in to and goes out of the users routes; nothing here can carry a password out."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    TypeAdapter,
    model_validator,
)

from app.core.security import BCRYPT_MAX_BYTES as PASSWORD_MAX_BYTES


def _password_bytes(value: str) -> str:
    if len(value.encode("utf-8", "surrogatepass")) > PASSWORD_MAX_BYTES:
        raise ValueError(f"must be at most {PASSWORD_MAX_BYTES} bytes in UTF-8")
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (bcrypt cannot hash them)")
    return value


def _stripped_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    return value


def _nfkc(value: object) -> object:
    # Fullwidth and other compatibility forms fold to their plain letters before anything else.
    return unicodedata.normalize("NFKC", value).strip() if isinstance(value, str) else value


def _ascii_only(value: str) -> str:
    # Look-alike letters from other scripts (a Cyrillic a, U+0430, for the Latin one) would
    # register a second account that reads as the first: addresses are ASCII, domains punycode.
    if not value.isascii():
        raise ValueError(
            "must be ASCII once normalised (write an international domain in punycode, xn--)"
        )
    return value


Email = Annotated[
    EmailStr,
    StrictBool,
    BeforeValidator(_nfkc),
    AfterValidator(_ascii_only),
    Field(max_length=254, examples=["ada@example.com"]),
]
Name = Annotated[
    str,
    Field(min_length=1, max_length=100, examples=["Ada Lovelace"]),
    AfterValidator(_stripped_name),
]
Password = Annotated[
    str,
    Field(min_length=8, max_length=PASSWORD_MAX_BYTES, examples=["correct horse battery"]),
    AfterValidator(_password_bytes),
]
UserSort = Literal["id", "-id", "name", "-name", "created_at", "-created_at"]


class _Input(BaseModel):
    # Unknown fields are refused: a client sending `role` must learn it was not applied.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class UserCreate(_Input):
    """Registration: a new account with the `user` role."""

    email: Email
    name: Name
    password: Password


class UserReplace(_Input):
    """PUT: the full set of editable fields."""

    email: Email
    name: Name
    is_active: StrictBool


def _not_nullable(schema: dict[str, Any]) -> None:
    # The fields may be left out, but none accepts null: say so in the schema, rather than the
    # `anyOf [..., null]` that `X | None` would document.
    for field in schema.get("properties", {}).values():
        options = field.pop("anyOf", None)
        if options is not None:
            field.update(next(o for o in options if o.get("type") != "null"))
        field.pop("default", None)


class UserUpdate(_Input):
    """PATCH: only the fields sent change; `null` is not a value any of them accepts."""

    model_config = ConfigDict(json_schema_extra=_not_nullable)

    email: Email | None = None
    name: Name | None = None
    is_active: StrictBool | None = None
    password: Password | None = None
    current_password: str | None = Field(
        default=None,
        max_length=PASSWORD_MAX_BYTES,
        description="Required with `password` when you change your own password.",
    )

    @model_validator(mode="after")
    def _no_nulls(self) -> UserUpdate:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} may be left out but not set to null")
        return self


class UserOut(BaseModel):
    """A user as every response shows it: `email` and `role` only to the user themself and to
    admins (anyone else gets the public fields)."""

    id: int
    email: str | None = Field(
        default=None, description="Shown to the user themself and to admins only."
    )
    name: str
    role: Literal["user", "admin"] | None = Field(
        default=None, description="Shown to the user themself and to admins only."
    )
    is_active: bool
    created_at: datetime
    updated_at: datetime


# What anyone may see of anyone: `UserOut` without these.
PRIVATE_FIELDS: set[str] = {"email", "role"}


def public_view(user: object, *, full: bool = False) -> dict[str, Any]:
    """The JSON a response or an event shows of a user (an object with `UserOut`'s fields):
    every field when `full` (its owner or an admin reads it), else the public ones."""
    return UserOut.model_validate(user, from_attributes=True).model_dump(
        mode="json", exclude=None if full else PRIVATE_FIELDS
    )


_USER_OUT = TypeAdapter(UserOut)


def public_json(user: object, *, full: bool = False) -> bytes:
    """`public_view` already encoded: pydantic writes the JSON in one step, with no dict."""
    return _USER_OUT.dump_json(
        UserOut.model_validate(user, from_attributes=True),
        exclude=None if full else PRIVATE_FIELDS,
    )


def user_list_json(items: Sequence[bytes], total: int, skip: int, limit: int) -> bytes:
    """A `UserList` body from its items' JSON already rendered (`UserService.public_json`):
    a page joins kept bodies instead of validating and serialising fifty models twice."""
    return b"".join(
        (
            b'{"items":[',
            b",".join(items),
            b"],",
            orjson.dumps({"total": total, "skip": skip, "limit": limit})[1:],
        )
    )


class UserList(BaseModel):
    """One page of users."""

    items: list[UserOut]
    total: int = Field(description="All matches, before skip and limit.")
    skip: int
    limit: int
