"""Defence in depth: scrub anything shaped like a LangSmith key from text and logs.

The code never puts a key into a message on purpose; this catches what a
library might echo back (a response body, a repr) before it is stored.
"""

from __future__ import annotations

import logging
import re

_KEY_SHAPE = re.compile(r"(lsv2_(?:sk|pt)_|ls__)[A-Za-z0-9_]{6,}")


def redact(text: str) -> str:
    return _KEY_SHAPE.sub(r"\1[REDACTED]", text)


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites a record's message with keys redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def looks_like_key(text: str) -> bool:
    """Whether the text holds something shaped like a LangSmith key."""
    return _KEY_SHAPE.search(text) is not None
