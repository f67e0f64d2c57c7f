"""Entity tags and the RFC 9110 list forms of If-Match and If-None-Match."""

from __future__ import annotations

from app.api.etags import entity_tag, if_match_versions, if_none_match_hits


def test_entity_tag_is_strong_and_names_id_and_version() -> None:
    assert entity_tag(5, 3) == '"5-3"'


def test_if_none_match_list_star_and_weak_forms() -> None:
    current = entity_tag(5, 3)
    assert if_none_match_hits('"5-3"', current)
    assert if_none_match_hits('"5-1", W/"5-3"', current)
    assert if_none_match_hits("*", current)
    assert not if_none_match_hits('"5-2"', current)
    assert not if_none_match_hits(None, current)
    assert not if_none_match_hits("5-3", current)  # unquoted: not an entity-tag


def test_if_match_versions_use_strong_comparison_for_this_record_only() -> None:
    assert if_match_versions(None, 5) is None
    assert if_match_versions("*", 5) is None
    assert if_match_versions('"5-1", "5-3"', 5) == {1, 3}
    assert if_match_versions('W/"5-3"', 5) == frozenset()
    assert if_match_versions('"6-3"', 5) == frozenset()
    assert if_match_versions("garbage", 5) == frozenset()
