"""Minting, for tenant keys and admin keys alike: a create whose answer is lost leaves no key
behind, whether the mint tried again succeeds or is lost too."""

from __future__ import annotations

import uuid

import pytest

from devstack.stack import LocalStack
from tenant_keys import minting
from tenant_keys.admin_keys import AdminScope
from tenant_keys.errors import LangSmithError
from tenant_keys.keys import PROJECT_HOME
from tenant_keys.services import Services

KINDS: dict[str, minting.KeyKind] = {
    "tenant key": PROJECT_HOME,
    "admin key": AdminScope(kind="workspace"),
}


def _keys_described(backends: LocalStack, description: str) -> list[dict[str, object]]:
    """Every key with this description the emulator made, deleted ones included."""
    keys = backends.langsmith.control.keys()
    return [k for k in keys if k.get("description") == description]


def _lose_creates(backends: LocalStack, count: int) -> None:
    """The next `count` creates are applied, and their answers dropped on the way back."""
    backends.langsmith.control.inject_fault(
        method="POST", route="/api/v1/api-key", action="drop", when="after", count=count
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_lost_create_is_cleaned_up_and_minted_again(
    backends: LocalStack, services: Services, kind: str
) -> None:
    description = f"minting-test-{uuid.uuid4().hex[:8]}"
    _lose_creates(backends, 1)
    created = minting.mint(services.langsmith, KINDS[kind], description, services.key_lifetime)

    keys = _keys_described(backends, description)
    assert len(keys) == 2, "the lost key and the one returned"
    assert {k["id"] for k in keys if not k.get("deleted_at")} == {created.id}


@pytest.mark.parametrize("kind", KINDS)
def test_a_second_lost_create_is_raised_and_leaves_no_key(
    backends: LocalStack, services: Services, kind: str
) -> None:
    description = f"minting-test-{uuid.uuid4().hex[:8]}"
    _lose_creates(backends, 2)
    with pytest.raises(LangSmithError) as raised:
        minting.mint(services.langsmith, KINDS[kind], description, services.key_lifetime)

    assert raised.value.maybe_applied
    keys = _keys_described(backends, description)
    assert len(keys) == 2, "both creates were applied"
    assert [k for k in keys if not k.get("deleted_at")] == [], "an orphan was left behind"
