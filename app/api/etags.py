"""Entity tags and the conditional request headers (RFC 9110 section 13).

The list headers are parsed in one linear pass with a bound on how many tags they may hold: a
regular expression over a client's header is a denial of service waiting for the right input.
"""

from __future__ import annotations

from app.core.exceptions import BadRequest
from app.core.parsing import ascii_int

MAX_TAGS = 64
# RFC 9110 etagc: %x21 / %x23-7E / obs-text.
_ETAG_CHARS = frozenset(chr(c) for c in (0x21, *range(0x23, 0x7F), *range(0x80, 0x100)))


def entity_tag(record_id: int, version: int) -> str:
    """The strong ETag of one version of one record."""
    return f'"{record_id}-{version}"'


def _tags(header: str) -> list[tuple[bool, str]]:
    """(is_weak, opaque value) for each entity-tag in a list header; malformed parts are skipped.

    Every step moves forward (`str.find` from the current position), so the work is linear in
    the header's length whatever it holds.
    """
    tags: list[tuple[bool, str]] = []
    position, end = 0, len(header)
    while position < end:
        while position < end and header[position] in " \t,":
            position += 1
        if position >= end:
            break
        weak = header.startswith("W/", position)
        if weak:
            position += 2
        if position < end and header[position] == '"':
            closing = header.find('"', position + 1)
            if closing == -1:
                break
            value = header[position + 1 : closing]
            if _ETAG_CHARS.issuperset(value):
                if len(tags) == MAX_TAGS:
                    raise BadRequest(
                        f"A conditional header may list at most {MAX_TAGS} entity-tags."
                    )
                tags.append((weak, value))
            position = closing + 1
        else:
            comma = header.find(",", position)
            if comma == -1:
                break
            position = comma + 1
    return tags


def if_none_match_hits(header: str, current_tag: str) -> bool:
    """True when `If-None-Match` (empty when absent) names the current tag (weak comparison)
    or is `*`."""
    if not header:
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
        if not weak and value.startswith(prefix):
            version = ascii_int(value[len(prefix) :])
            if version is not None:
                versions.add(version)
    return frozenset(versions)
