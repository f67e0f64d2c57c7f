"""A set of request paths, matched one way by every layer that exempts or selects paths."""

from __future__ import annotations

from collections.abc import Iterable


class Paths:
    """Exact paths, plus every path under some prefixes (`/static/`).

    `path in paths` is one set lookup, and a `str.startswith` only when there are prefixes:
    the chain asks it on every request. Sets combine with `|`.
    """

    __slots__ = ("exact", "prefixes")

    def __init__(self, exact: Iterable[str] = (), prefixes: Iterable[str] = ()) -> None:
        self.exact = frozenset(exact)
        self.prefixes = tuple(sorted(set(prefixes)))

    def __contains__(self, path: object) -> bool:
        if path in self.exact:
            return True
        return bool(self.prefixes) and isinstance(path, str) and path.startswith(self.prefixes)

    def __or__(self, other: Paths) -> Paths:
        return Paths(self.exact | other.exact, (*self.prefixes, *other.prefixes))

    def __bool__(self) -> bool:
        return bool(self.exact or self.prefixes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Paths):
            return NotImplemented
        return self.exact == other.exact and self.prefixes == other.prefixes

    def __hash__(self) -> int:
        return hash((self.exact, self.prefixes))

    def __repr__(self) -> str:
        return f"Paths({sorted(self.exact)!r}, prefixes={list(self.prefixes)!r})"


NO_PATHS = Paths()
