"""The proof asked for before any destructive call: LangSmith's own record says the key or the
project is this tenant's, and the tool's. A secret's content is input, not truth.

- A key is the tenant's when LangSmith lists it with the description the tool wrote at mint
  time (`tenant-keys tenant=<id> rotation=<r>`). A key LangSmith does not list is gone.
- A project is the tenant's when LangSmith lists it as `tenant-<id>` with the description the
  tool wrote at creation (`... (managed by tenant-keys)`).

Listings are cached for a minute, so a fan-out over every tenant costs a listing a minute,
not a call per tenant. What was listed cannot change owner (a description is written once),
so the next listing is taken by one caller while the others go on with the last one; an id
the listing lacks is looked for again in a fresh listing (it may be newer than it), so "gone"
is always today's answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from tenant_keys.errors import NotOwned
from tenant_keys.langsmith import ApiKeyInfo, LangSmithAdmin, Project
from tenant_keys.models import PROJECT_MARKER, parse_key_description, project_name, utcnow

LISTING_TTL_SECONDS = 60.0
# Between LangSmith's clock (creation times) and ours.
CLOCK_SKEW = timedelta(minutes=1)
T = TypeVar("T", ApiKeyInfo, Project)


@dataclass(frozen=True)
class _Taken(Generic[T]):
    """One listing as taken: read whole, so its items and its times always belong together."""

    items: dict[str, T]
    started: float  # monotonic: when its fetch began
    on: datetime | None  # wall clock, to compare with creation times


class _Listing(Generic[T]):
    """One cached listing (keys of one kind, the projects of one workspace), by id.

    A listed item keeps its owner, so a listing past its TTL still answers for what it lists
    while one caller takes the next: taking 10,000 projects lasts seconds, and a fan-out's other
    threads must not wait for it. An id the listing lacks waits for a listing begun after the
    question, unless the item is known to be older than the listing."""

    def __init__(self, fetch: Callable[[], list[T]]) -> None:
        self._fetch: Callable[[], list[T]] = fetch
        self._taken: _Taken[T] = _Taken(items={}, started=float("-inf"), on=None)
        self._fetching = threading.Lock()

    def find(self, item_id: str, *, created_before: datetime | None = None) -> T | None:
        """The item, or None if it does not exist."""
        asked = time.monotonic()
        taken = self._taken
        found = taken.items.get(item_id)
        known_gone = (
            created_before is not None
            and taken.on is not None
            and created_before + CLOCK_SKEW < taken.on
        )
        if found is not None or known_gone:
            stale = asked - taken.started > LISTING_TTL_SECONDS
            if stale and self._fetching.acquire(blocking=False):
                try:
                    self._take()
                finally:
                    self._fetching.release()
                return self._taken.items.get(item_id)
            return found
        with self._fetching:
            # A listing that finished while this caller waited may list the id (a listed item
            # keeps its owner); only a lacking one needs a listing begun after the question.
            if item_id not in self._taken.items and self._taken.started < asked:
                self._take()
        return self._taken.items.get(item_id)

    def take_ahead(self) -> None:
        """Take the listing now, unless one is being taken: a fan-out's first questions then
        find it ready instead of each waiting for every page of it."""
        if self._fetching.acquire(blocking=False):
            try:
                self._take()
            finally:
                self._fetching.release()

    def _take(self) -> None:
        started, on = time.monotonic(), utcnow()
        items = {item.id: item for item in self._fetch()}
        self._taken = _Taken(items=items, started=started, on=on)


class Ownership:
    """Proofs of ownership over LangSmith's listings, shared by every thread of a process."""

    def __init__(self, langsmith: LangSmithAdmin) -> None:
        self._langsmith = langsmith
        self._guard = threading.Lock()
        self._keys: dict[bool, _Listing[ApiKeyInfo]] = {}
        self._projects: dict[str | None, _Listing[Project]] = {}

    def key(
        self,
        tenant_id: str,
        key_id: str,
        *,
        service_key: bool,
        created_before: datetime | None = None,
    ) -> bool:
        """True: LangSmith lists the key as minted for this tenant. False: it is not listed (it
        is gone). Raises `NotOwned` when it is listed as someone else's, or not the tool's.
        `created_before`: when the key is known to be older than that, a listing taken after it
        answers "gone" without being taken again."""
        with self._guard:
            listing = self._keys.get(service_key)
            if listing is None:
                fetch = (
                    self._langsmith.list_service_keys if service_key else self._langsmith.list_keys
                )
                listing = self._keys[service_key] = _Listing(fetch)
        found = listing.find(key_id, created_before=created_before)
        if found is None:
            return False
        parsed = parse_key_description(found.description)
        if parsed is None or parsed[0] != tenant_id:
            whose = "the tool did not mint it" if parsed is None else f"minted for {parsed[0]!r}"
            raise NotOwned(tenant_id, f"key {key_id}", whose)
        return True

    def project(self, tenant_id: str, project_id: str, workspace_id: str | None) -> Project:
        """LangSmith's record of the project if it is this tenant's and the tool's; else
        `NotOwned` (not listed, another tenant's name, or not created by the tool)."""
        found = self._project_listing(workspace_id).find(project_id)
        if found is None:
            raise NotOwned(tenant_id, f"project {project_id}", "LangSmith does not list it")
        if found.name != project_name(tenant_id):
            raise NotOwned(tenant_id, f"project {project_id}", f"it is {found.name!r}")
        if PROJECT_MARKER not in (found.description or ""):
            raise NotOwned(tenant_id, f"project {project_id}", "the tool did not create it")
        return found

    def list_projects_ahead(self, workspace_id: str | None) -> None:
        """List the workspace's projects now, ahead of the fan-out that will ask about them."""
        self._project_listing(workspace_id).take_ahead()

    def _project_listing(self, workspace_id: str | None) -> _Listing[Project]:
        with self._guard:
            listing = self._projects.get(workspace_id)
            if listing is None:
                listing = self._projects[workspace_id] = _Listing(self._project_fetch(workspace_id))
            return listing

    def _project_fetch(self, workspace_id: str | None) -> Callable[[], list[Project]]:
        def fetch() -> list[Project]:
            projects = self._langsmith.iter_projects(
                name_contains=project_name(""), workspace_id=workspace_id
            )
            return list(projects)

        return fetch
