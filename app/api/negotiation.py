"""Content negotiation on `Accept`, just enough to tell a browser from an API client."""

from __future__ import annotations

MAX_ACCEPT_ITEMS = 32


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return min(1.0, max(0.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0


def prefers_html(accept: str) -> bool:
    """Whether `text/html` is named in `accept` and ranks at least as high as JSON.

    Browsers name `text/html` first; curl and HTTP libraries send `*/*` or `application/json`,
    which keep getting JSON. Only the first items are read: the header is client input.
    """
    html = json = -1.0
    for item in accept.split(",", MAX_ACCEPT_ITEMS)[:MAX_ACCEPT_ITEMS]:
        media, *params = item.split(";")
        media = media.strip().lower()
        if media == "text/html":
            html = max(html, _quality(params))
        elif media in ("application/json", "application/*"):
            json = max(json, _quality(params))
    return html > 0 and html >= json
