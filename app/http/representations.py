"""Rendered representations, kept by what identifies their content.

A user's public JSON is the same for as long as its id, version and update time are the same
(the strong ETag promises as much), so the hot read renders it once per version rather than
once per request. The cache never needs invalidating: a write makes a new key, and old keys age
out. Bounded, least recently used first, so no client can make it grow.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable


class RepresentationCache:
    """At most `max_entries` rendered bodies by content key, least recently used dropped first.

    For the event loop's thread only (no lock): every caller is a request handler.
    """

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._bodies: OrderedDict[Hashable, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._bodies)

    def get_or_render(self, key: Hashable, render: Callable[[], bytes]) -> bytes:
        """The body kept for `key`, or `render()`'s, kept from now on."""
        body = self._bodies.get(key)
        if body is not None:
            self._bodies.move_to_end(key)
            return body
        body = render()
        self._bodies[key] = body
        if len(self._bodies) > self.max_entries:
            self._bodies.popitem(last=False)
        return body
