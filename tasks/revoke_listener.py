"""Kill on report: the served revoke deployment's fast path.

A flow run starts in a new Python process (Prefect's runner spawns one per run), and on a busy
machine that alone took seconds; a report arriving while a fan-out loads the machine waited
longer than a leaked key may live. This listener sits in the long-running serving process,
takes `security.key.compromised` from Prefect's event stream the moment the server has it,
and runs the revoke's kill step (`tenant_keys.revocation.kill`: delete, prove by 401, no
lock, no replacement). The flow run that the same event triggers then does the whole revoke
as before and finds the keys already dead: the kill is idempotent, and the run records the
incident and replaces the key under the lock. If the listener is down, the flow run still
kills; nothing depends on it but speed.

It reads an event as the deployment's trigger does: the tenant from the resource id, ids only
if they have an id's shape, never a free-text field.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from prefect.events import Event
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventFilter, EventNameFilter

from tenant_keys.errors import error_text
from tenant_keys.events import COMPROMISED, LEAK_RESOURCE_PREFIX
from tenant_keys.revocation import kill, request_from
from tenant_keys.services import get_services

log = logging.getLogger(__name__)


def kill_on_report(event: Event) -> str:
    """Kill the keys one compromise report names; one line about what happened."""
    payload = event.payload
    resource = event.resource.id
    key_id = str(payload.get("key_id") or "")
    fingerprint = str(payload.get("key_fingerprint") or "")
    try:
        services = get_services().urgent()
        request = request_from(
            services,
            tenant=None if resource.startswith(LEAK_RESOURCE_PREFIX) else resource,
            scope=str(payload.get("scope") or "current"),
            key_id=key_id if len(key_id) == 36 else None,
            fingerprint=fingerprint if len(fingerprint) == 64 else None,
            incident_id=str(event.id),
        )
    except Exception as exc:  # bad input, or a store that failed: the flow run reports it
        return f"report {event.id}: not acted on ({error_text(exc)}); its flow run decides"
    outcome = kill(services, request)
    killed = ",".join(k.key_id for k in outcome.revoked) or "none"
    if outcome.rejected_at is None:
        return (
            f"tenant={outcome.tenant_id} report {event.id}: kill failed ({outcome.error}); "
            "its flow run retries"
        )
    return f"tenant={outcome.tenant_id} report {event.id}: killed {killed}, rejected (401)"


async def _listen(since: datetime, stop: threading.Event, pool: ThreadPoolExecutor) -> None:
    seen: set[str] = set()
    loop = asyncio.get_running_loop()
    subscriber = get_events_subscriber(
        filter=EventFilter(event=EventNameFilter(name=[COMPROMISED])),
    )
    async with subscriber:
        async for event in subscriber:
            if stop.is_set():
                return
            # The stream replays the last minute on (re)connecting: only reports made while
            # listening, each once.
            if event.occurred < since or str(event.id) in seen:
                continue
            seen.add(str(event.id))
            future = loop.run_in_executor(pool, kill_on_report, event)
            future.add_done_callback(lambda done: log.warning("%s", done.result()))


def start_listener() -> threading.Event:
    """Listen in a daemon thread of this process; set the returned event to stop it."""
    stop = threading.Event()
    since = datetime.now(UTC)
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kill-on-report")

    def run() -> None:
        while not stop.is_set():
            try:
                asyncio.run(_listen(since, stop, pool))
            except Exception as exc:  # the stream broke for good: start again
                log.warning("compromise listener restarting: %s", error_text(exc))
                stop.wait(1.0)

    threading.Thread(target=run, name="compromise-listener", daemon=True).start()
    return stop
