"""The representation cache: bodies kept by content key, bounded, least recently used first."""

from __future__ import annotations

import pytest

from app.http.representations import RepresentationCache


def test_a_body_is_rendered_once_per_key() -> None:
    cache = RepresentationCache(max_entries=4)
    renders: list[str] = []

    def render(text: str) -> bytes:
        renders.append(text)
        return text.encode()

    assert cache.get_or_render(("a", 1), lambda: render("a1")) == b"a1"
    assert cache.get_or_render(("a", 1), lambda: render("again")) == b"a1"
    assert cache.get_or_render(("a", 2), lambda: render("a2")) == b"a2"
    assert renders == ["a1", "a2"]


def test_the_least_recently_used_body_goes_first_and_the_bound_holds() -> None:
    cache = RepresentationCache(max_entries=2)
    cache.get_or_render(1, lambda: b"one")
    cache.get_or_render(2, lambda: b"two")
    cache.get_or_render(1, lambda: b"unused")  # 1 is now the most recently used
    cache.get_or_render(3, lambda: b"three")  # so 2 goes
    assert len(cache) == 2
    assert cache.get_or_render(1, lambda: b"rendered again") == b"one"
    assert cache.get_or_render(2, lambda: b"two, rendered again") == b"two, rendered again"
    for key in range(100, 1000):
        cache.get_or_render(key, lambda: b"x")
    assert len(cache) == 2


def test_a_cache_must_hold_something() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RepresentationCache(max_entries=0)
