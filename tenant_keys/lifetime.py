"""The expiry of every minted key: the key lifetime setting, or shorter where the organization
caps key lifetime (`max_api_key_expiry_days`, `max_service_key_expiry_days`): LangSmith refuses
a mint beyond the cap, which would otherwise fail every rotation of such an org.

The cap is learned from the first refusal: read from the org's settings when the admin key may
read them, else found by stepping the lifetime down. It is said once in the log.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from tenant_keys.errors import LangSmithError
from tenant_keys.langsmith import LangSmithAdmin
from tenant_keys.models import utcnow

log = logging.getLogger(__name__)

# Lifetimes tried, longest first, when the org's cap cannot be read.
STEPS_DAYS = (14, 7, 1)


class KeyLifetime:
    def __init__(self, langsmith: LangSmithAdmin, days: int) -> None:
        self._langsmith = langsmith
        self._days = {False: days, True: days}  # by kind: workspace key, org service key
        self._lock = threading.Lock()

    def expires_at(self, *, service_key: bool) -> datetime:
        with self._lock:
            return utcnow() + timedelta(days=self._days[service_key])

    def shorten(self, *, service_key: bool) -> bool:
        """After LangSmith refused a mint for its expiry: the longest lifetime the org allows,
        if shorter than the one refused (False: nothing shorter to try; the refusal stands)."""
        with self._lock:
            refused = self._days[service_key]
            cap = self._org_cap(service_key)
            allowed = [cap] if cap is not None else [d for d in STEPS_DAYS if d < refused]
            if not allowed or allowed[0] >= refused:
                return False
            self._days[service_key] = allowed[0]
        log.warning(
            "LangSmith refused a key living %d days (the organization caps key lifetime): "
            "minting with %d days from now on; set TENANT_KEYS_KEY_LIFETIME_DAYS to at most that",
            refused,
            allowed[0],
        )
        return True

    def _org_cap(self, service_key: bool) -> int | None:
        try:
            info = self._langsmith.org_info()
        except LangSmithError:
            return None  # an admin key that may not read the org's settings: step down
        cap = info.max_service_key_expiry_days if service_key else info.max_api_key_expiry_days
        caps = [
            c for c in (cap, info.max_api_key_expiry_days, info.max_service_key_expiry_days) if c
        ]
        return min(caps) if caps else None
