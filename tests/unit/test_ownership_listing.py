"""The cached listing behind every ownership proof: a stale listing keeps answering for what it
lists while one caller takes the next, and an id it lacks waits for a listing begun after the
question. The fetch is the listing's own seam (a callable); here it lists from a dict."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from tenant_keys import ownership
from tenant_keys.langsmith import Project
from tenant_keys.models import utcnow


def _project(project_id: str) -> Project:
    return Project(id=project_id, name=f"tenant-{project_id}", tenant_id="workspace")


class Source:
    """What LangSmith lists now; `gate` holds a fetch until it is set."""

    def __init__(self, *ids: str) -> None:
        self.ids = list(ids)
        self.fetches = 0
        self.gate = threading.Event()
        self.gate.set()
        self.fetching = threading.Event()

    def fetch(self) -> list[Project]:
        self.fetches += 1
        listed = [_project(i) for i in self.ids]  # what was there when the fetch began
        self.fetching.set()
        assert self.gate.wait(10), "the test never opened the gate"
        return listed


def _asking(
    listing: ownership._Listing[Project], ids: list[str]
) -> tuple[list[threading.Thread], list[Project | None]]:
    """A caller per id, asking at once; returns when they have asked and wait (their threads,
    and the list their answers go to)."""
    answers: list[Project | None] = []
    threads = [threading.Thread(target=lambda i=i: answers.append(listing.find(i))) for i in ids]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    return threads, answers


def test_a_stale_listing_answers_for_what_it_lists_while_one_caller_takes_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = Source("p1")
    listing = ownership._Listing(source.fetch)
    assert listing.find("p1") is not None and source.fetches == 1
    monkeypatch.setattr(ownership, "LISTING_TTL_SECONDS", 0.0)  # every listing is stale now

    source.gate.clear()
    source.fetching.clear()
    refresher = threading.Thread(target=listing.find, args=("p1",))
    refresher.start()
    assert source.fetching.wait(10), "the stale listing was not taken again"
    # The next listing is being taken; the last one still answers, at once.
    answered = listing.find("p1")
    assert answered is not None and answered.id == "p1"
    assert source.fetches == 2, "a second caller took a listing of its own"
    source.gate.set()
    refresher.join(10)
    assert not refresher.is_alive()


def test_an_id_the_listing_lacks_waits_for_a_listing_begun_after_the_question() -> None:
    source = Source("p1")
    listing = ownership._Listing(source.fetch)
    assert listing.find("p2") is None and source.fetches == 1

    source.ids.append("p2")  # created since
    found = listing.find("p2")

    assert found is not None and found.id == "p2" and source.fetches == 2


def test_callers_missing_an_id_at_once_share_one_listing() -> None:
    source = Source("p1")
    listing = ownership._Listing(source.fetch)
    listing.find("p1")
    source.gate.clear()
    source.fetching.clear()
    first_answer: list[Project | None] = []
    first = threading.Thread(target=lambda: first_answer.append(listing.find("p2")))
    first.start()
    assert source.fetching.wait(10)
    source.ids.append("p2")  # created while the first caller's listing is being taken
    # These ask while that listing, which began before them and lacks p2, is being taken: they
    # wait for it, then take one more, together.
    others, answers = _asking(listing, ["p2"] * 8)
    source.gate.set()
    for thread in [first, *others]:
        thread.join(10)

    assert first_answer == [None]
    assert [a.id if a else None for a in answers] == ["p2"] * 8
    assert source.fetches == 3, "one listing for the first caller, one for all the others"


def test_a_listing_taken_ahead_answers_the_questions_asked_while_it_is_taken() -> None:
    """A fan-out lists the projects ahead; its first tenants ask before that listing is done,
    and wait for it, not for one of their own."""
    source = Source("p1", "p2")
    listing = ownership._Listing(source.fetch)
    source.gate.clear()
    ahead = threading.Thread(target=listing.take_ahead)
    ahead.start()
    assert source.fetching.wait(10)
    askers, answers = _asking(listing, ["p1", "p2"])
    source.gate.set()
    for thread in [ahead, *askers]:
        thread.join(10)

    assert sorted(a.id for a in answers if a) == ["p1", "p2"]
    assert source.fetches == 1


def test_an_id_older_than_the_listing_and_missing_from_it_is_gone_without_a_fetch() -> None:
    source = Source("p1")
    listing = ownership._Listing(source.fetch)
    listing.find("p1")

    created_long_ago = utcnow() - timedelta(hours=1)

    assert listing.find("deleted", created_before=created_long_ago) is None
    assert source.fetches == 1
