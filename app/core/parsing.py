"""Parsing numbers out of client input, strictly.

`str.isdigit()` accepts `²` and Arabic-Indic digits, and `int()` accepts those too or raises on
more than 4,300 digits: neither belongs on input a client controls.
"""

from __future__ import annotations

_ASCII_DIGITS = frozenset("0123456789")


def ascii_int(text: str, *, max_digits: int = 18) -> int | None:
    """The value of 1 to `max_digits` ASCII digits, else None (signs and spaces included)."""
    if not 0 < len(text) <= max_digits or not _ASCII_DIGITS.issuperset(text):
        return None
    return int(text)
