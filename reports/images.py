"""Charts embedded in a self-contained page: a PNG as a data URI, or the reason it is not.

Every HTML report (run, plan, trend, reproduction) inlines its charts so the file opens
offline and makes no network request; this is the one place that encodes them.
"""

from __future__ import annotations

import base64
from html import escape


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for ``png``."""
    return f"data:image/png;base64,{base64.b64encode(png).decode()}"


def img(png: bytes | str, alt: str) -> str:
    """An ``<img>`` of ``png``; a string is why the chart could not be drawn, shown
    after ``alt`` as a warning."""
    if isinstance(png, str):
        return f'<p class="warn">{escape(alt)}: {escape(png)}</p>'
    return f'<img alt="{escape(alt)}" src="{data_uri(png)}">'
