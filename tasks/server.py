"""The Prefect server as the CLI sees it: configured? reachable?"""

from __future__ import annotations

import httpx
from prefect.settings import PREFECT_API_URL

from tenant_keys.errors import BadInput

# Long enough for a busy server on loopback, short enough that a revoke with Prefect down
# still kills the key within seconds.
HEALTH_TIMEOUT_SECONDS = 1.5


def api_url() -> str | None:
    return PREFECT_API_URL.value() or None


def reachable() -> bool:
    """Whether PREFECT_API_URL is set and its server answers its health check."""
    url = api_url()
    if not url:
        return False
    try:
        return httpx.get(f"{url.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_SECONDS).is_success
    except httpx.HTTPError:
        return False


def require_api_url(allow_temporary: bool) -> None:
    """Commands that take tenant locks need the real server: without PREFECT_API_URL, Prefect
    would start a temporary one of its own, whose locks no other run sees."""
    if not api_url() and not allow_temporary:
        raise BadInput(
            "PREFECT_API_URL is not set: point it at your Prefect server's /api (or set "
            "TENANT_KEYS_ALLOW_TEMPORARY_PREFECT=true for a single-user experiment)"
        )
