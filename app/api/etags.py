"""Entity tags and the conditional request headers (RFC 9110 section 13)."""

from __future__ import annotations

import re

# An entity-tag: optional weakness marker, then opaque characters between double quotes.
_ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*(?:,|$)')


def entity_tag(record_id: int, version: int) -> str:
    """The strong ETag of one version of one record."""
    return f'"{record_id}-{version}"'


def _tags(header: str) -> list[tuple[bool, str]]:
    """(is_weak, opaque value) for each entity-tag in a list header; malformed parts are skipped."""
    return [(bool(m.group(1)), m.group(2)) for m in _ENTITY_TAG.finditer(header)]


def if_none_match_hits(header: str | None, current_tag: str) -> bool:
    """True when `If-None-Match` names the current tag (weak comparison) or is `*`."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    current = current_tag.strip('"')
    return any(value == current for _, value in _tags(header))


def if_match_versions(header: str | None, record_id: int) -> frozenset[int] | None:
    """The versions of `record_id` that `If-Match` accepts (strong comparison).

    None means no constraint (header absent, or `*`: the record must merely exist). An empty
    set means no listed tag can ever match, so the request must fail with 412.
    """
    if header is None or header.strip() == "*":
        return None
    versions: set[int] = set()
    prefix = f"{record_id}-"
    for weak, value in _tags(header):
        if not weak and value.startswith(prefix) and value[len(prefix) :].isdigit():
            versions.add(int(value[len(prefix) :]))
    return frozenset(versions)
