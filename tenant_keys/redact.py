"""Defence in depth: keys scrubbed from any text the process writes, whatever logs it.

The code never puts a key into a message on purpose; this catches what a library might echo
back (a response body, a repr, a validation error) before it is stored. Two nets:
- by shape: anything that looks like a LangSmith key (`lsv2_sk_…`, `lsv2_pt_…`, `ls__…`);
- by value: every key this process has held (`remember`), and any run of 16 or more of its
  characters, so a key's tail without its prefix is caught too.
`install()` puts both on every log record the process creates, for every logger and every
handler (Prefect's API log handler and console included), whatever the logging settings.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict

from pydantic import SecretStr

_KEY_SHAPE = re.compile(r"(lsv2_(?:sk|pt)_|ls__)[A-Za-z0-9_]{6,}")
# A run of key characters long enough to be checked against the keys this process has held.
_TOKEN = re.compile(r"[A-Za-z0-9_]{16,}")
WINDOW = 16
_MAX_KEYS = 50_000  # a fan-out of every tenant holds about two keys each

_guard = threading.Lock()
_known: OrderedDict[str, None] = OrderedDict()
_windows: dict[str, int] = {}  # every 16-character window of a known key -> how many keys


def remember(secret: SecretStr | str) -> None:
    """Treat this key as secret in everything `redact` sees from now on."""
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if len(value) < WINDOW:
        return
    with _guard:
        if value in _known:
            _known.move_to_end(value)
            return
        _known[value] = None
        for window in _windows_of(value):
            _windows[window] = _windows.get(window, 0) + 1
        if len(_known) > _MAX_KEYS:
            oldest, _ = _known.popitem(last=False)
            for window in _windows_of(oldest):
                if _windows[window] <= 1:
                    del _windows[window]
                else:
                    _windows[window] -= 1


def redact(text: str) -> str:
    text = _KEY_SHAPE.sub(r"\1[REDACTED]", text)
    if _windows:
        text = _TOKEN.sub(_redact_known, text)
    return text


def looks_like_key(text: str) -> bool:
    """Whether the text holds something shaped like a LangSmith key."""
    return _KEY_SHAPE.search(text) is not None


def _windows_of(value: str) -> set[str]:
    return {value[i : i + WINDOW] for i in range(len(value) - WINDOW + 1)}


def _redact_known(match: re.Match[str]) -> str:
    token = match.group(0)
    if any(token[i : i + WINDOW] in _windows for i in range(len(token) - WINDOW + 1)):
        return "[REDACTED]"
    return token


# -- every log record --------------------------------------------------------------------------

_base_factory = logging.getLogRecordFactory()
_installed = False


def _redacting_factory(*args: object, **kwargs: object) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    scrub(record)
    return record


def scrub(record: logging.LogRecord) -> None:
    """Rewrite the record's message (and the text of its exception) with keys redacted."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: the handler reports it as it would have
        return
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and record.exc_info[0] is not None:
        formatted = logging.Formatter().formatException(record.exc_info)
        record.exc_text = redact(formatted)


def install() -> None:
    """Redact every log record this process creates, from now on (idempotent)."""
    global _installed
    with _guard:
        if not _installed:
            logging.setLogRecordFactory(_redacting_factory)
            _installed = True
