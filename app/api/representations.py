"""Users as JSON, rendered once per version: the hot read sends kept bytes.

The bytes are kept in the app's `RepresentationCache` (`app/http/representations.py`, built by
the composition root) under what identifies their content, so the cache never needs
invalidating: a write makes a new key, and old keys age out.
"""

from __future__ import annotations

from app.http.representations import RepresentationCache
from app.schemas.users import public_json
from app.services.users import User


def user_json(rendered: RepresentationCache, user: User, *, full: bool = False) -> bytes:
    """The user's JSON (every field when `full`, else the public ones), rendered once per
    version of the user."""
    # The update time as well as the version: a store emptied and refilled (a Redis FLUSHALL)
    # can reuse an id and a version, never with the same microsecond.
    key = (user.id, user.version, user.updated_at, full)
    return rendered.get_or_render(key, lambda: public_json(user, full=full))
