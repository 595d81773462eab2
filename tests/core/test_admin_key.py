"""The admin key: read from Secrets Manager, rotated by the admin rotation's protocol (create →
test → promote → retire) against the emulator and moto, without Prefect."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from devstack.langsmith_emulator import EmulatorServer
from devstack.stack import ADMIN_SECRET_NAME, LocalStack
from tenant_keys.admin_rotation import NoAdminLock, retire_admin, rotate_admin
from tenant_keys.errors import ConfigError
from tenant_keys.keys import KeyHome
from tenant_keys.layout import CURRENT, PENDING
from tenant_keys.onboarding import onboard
from tenant_keys.rotation import rotate
from tenant_keys.services import Services
from tenant_keys.settings import Settings
from tests.core.admin_helpers import admin_keys, key_state, new_admin_secret, services_for


def _created_by(backends: LocalStack, key_id: str) -> str | None:
    return key_state(backends, key_id).get("created_by_key_id")


def test_the_flows_act_with_the_admin_key_of_the_secret(
    backends: LocalStack, services: Services, tenant_id: str
) -> None:
    """The local stack, as production: no admin key in the environment, only the secret's name;
    the key the tool acts with is the one the tool minted into the secret, not the seed."""
    assert services.settings.langsmith_admin_key is None
    assert services.settings.langsmith_admin_key_secret == ADMIN_SECRET_NAME
    assert services.admin_secret is not None
    record = services.admin_secret.read_admin()
    assert record.kind == "workspace"
    assert key_state(backends, record.key_id)["description"].startswith("tenant-keys admin ")

    result = onboard(services, tenant_id)

    assert result.key_id
    assert _created_by(backends, result.key_id) == record.key_id
    assert isinstance(backends.langsmith, EmulatorServer)
    assert record.key_id != backends.langsmith.admin_key_id  # never the seed itself


@pytest.mark.parametrize("kind", ["workspace", "org"])
def test_rotate_admin_end_to_end_and_the_flows_keep_working(
    backends: LocalStack, tenant_id: str, kind: str
) -> None:
    """A process that read the old admin key before the rotation (and caches it for an hour)
    goes on after the old key is deleted: its first call is refused (401), it reads the secret
    again and acts with the new key."""
    secret = new_admin_secret(backends, kind)
    with (
        services_for(secret, admin_key_cache_seconds=3600) as fan_out,
        services_for(secret) as admin,
    ):
        onboard(fan_out, tenant_id)  # reads (and caches) the current admin key
        assert admin.admin_secret is not None
        old = admin.admin_secret.read_admin()

        result = rotate_admin(admin, "ra-e2e", retire_now=True, lock=NoAdminLock())

        assert result.outcome == "rotated", result.error
        assert result.old_key_id == old.key_id and result.new_key_id != old.key_id
        new = admin.admin_secret.read_admin()
        assert new.key_id == result.new_key_id
        assert (new.kind, new.workspace_id, new.workspaces, new.org_role_id) == (
            old.kind,
            old.workspace_id,
            old.workspaces,
            old.org_role_id,
        ), "same kind, same role, same scope"
        assert key_state(backends, old.key_id)["deleted"], "the old admin key is deleted"
        assert not fan_out.langsmith.with_key(old.api_key).authenticates(
            old.api_key, workspace_id=backends.langsmith.workspace_id
        )
        state = admin.admin_secret.describe_admin()
        assert state.version_with(PENDING) == state.version_with(CURRENT), "finished"
        assert new.previous_key_id == old.key_id
        probes = [k for k in admin_keys(backends, "ra-e2e") if k["role_in_tool"] == "probe"]
        assert probes and all(k["deleted"] for k in probes), "the test step's probes are gone"

        rotated = rotate(fan_out, tenant_id, "r-after-admin", retire_now=True)

    assert rotated.outcome == "rotated", rotated.error
    assert rotated.new_key_id and _created_by(backends, rotated.new_key_id) == new.key_id
    [event] = result.events
    assert event.name == "tenant-keys.admin-key.rotated"


def test_a_tagged_tenant_rotates_with_the_new_admin_key(
    backends: LocalStack, tenant_id: str
) -> None:
    """Tagged isolation has the admin key (an org key) mint the tenant's keys with the tenant's
    role in the shared workspace and prove them confined to its project: after rotate-admin the
    new admin key does both, and the old one is gone."""
    secret = new_admin_secret(backends, "org")
    with services_for(secret, isolation="tagged", admin_key_cache_seconds=3600) as services:
        onboarded = onboard(services, tenant_id, isolation="tagged")
        assert onboarded.outcome == "created", onboarded.error
        assert services.admin_secret is not None
        old = services.admin_secret.read_admin()

        result = rotate_admin(services, "ra-tagged", retire_now=True, lock=NoAdminLock())

        assert result.outcome == "rotated", result.error
        assert key_state(backends, old.key_id)["deleted"], "the old admin key is deleted"
        rotated = rotate(services, tenant_id, "r-tagged-after-admin", retire_now=True)
        home = KeyHome.of(services.store.describe(tenant_id).tags)

    assert rotated.outcome == "rotated", rotated.error
    assert rotated.new_key_id and _created_by(backends, rotated.new_key_id) == result.new_key_id
    assert home.mode == "tagged"


def test_a_failed_test_step_leaves_the_old_admin_key_in_place(
    backends: LocalStack, tenant_id: str
) -> None:
    """The new key may not create keys (LangSmith answers its probe with 403): it is deleted,
    AWSPENDING dropped, and the old key stays current and working."""
    secret = new_admin_secret(backends)
    with services_for(secret) as admin:
        assert admin.admin_secret is not None
        old = admin.admin_secret.read_admin()
        # The first create is the new admin key's (with the old key); the second, its probe.
        backends.langsmith.control.inject_fault(
            method="POST", route="/api/v1/api-key", action="status", status=403, skip=1, count=1
        )
        try:
            result = rotate_admin(admin, "ra-test-fails", retire_now=True, lock=NoAdminLock())
        finally:
            backends.langsmith.control.clear_faults()

        assert result.outcome == "failed"
        assert result.error and "failed its test" in result.error
        assert admin.admin_secret.read_admin().key_id == old.key_id
        state = admin.admin_secret.describe_admin()
        assert state.version_with(PENDING) is None, "AWSPENDING dropped"
        [minted] = [
            k for k in admin_keys(backends, "ra-test-fails") if k["role_in_tool"] == "admin"
        ]
        assert minted["deleted"], "the new key that failed its test is deleted"
        assert not key_state(backends, old.key_id)["deleted"]
        assert onboard(admin, tenant_id).outcome == "created", "the old key still works"


def test_the_retire_refuses_to_delete_the_old_key_until_the_new_one_is_proven(
    backends: LocalStack,
) -> None:
    """Promoted, then the new key dies (deleted behind the tool's back): the retire keeps the
    old key (the one a process may be running with) and its label, and says so."""
    secret = new_admin_secret(backends)
    with services_for(secret, admin_grace_seconds=0) as admin:
        assert admin.admin_secret is not None
        old = admin.admin_secret.read_admin()
        promoted = rotate_admin(admin, "ra-unproven", retire_now=False, lock=NoAdminLock())
        assert promoted.outcome == "rotated" and promoted.new_key_id
        # The new key deleted out of band, with the old one (an admin may delete any key).
        admin.langsmith.with_key(old.api_key).delete_key(promoted.new_key_id)

        retired = retire_admin(admin, "ra-unproven", lock=NoAdminLock())

        assert retired.outcome == "retire-failed"
        assert retired.error and "not accepted" in retired.error
        assert not key_state(backends, old.key_id)["deleted"], "the old key is kept"
        # The durable record: the current record names it, and LangSmith still lists it.
        assert admin.admin_secret.read_admin().previous_key_id == old.key_id
        assert [e.name for e in retired.events] == ["tenant-keys.admin-key.retire-failed"]


def test_a_grace_window_keeps_the_old_admin_key_until_it_is_over(backends: LocalStack) -> None:
    secret = new_admin_secret(backends)
    with services_for(secret, admin_grace_seconds=3600) as admin:
        assert admin.admin_secret is not None
        old = admin.admin_secret.read_admin()
        first = rotate_admin(admin, "ra-grace", retire_now=False, lock=NoAdminLock())
        retired = retire_admin(admin, "ra-grace", lock=NoAdminLock())
        again = rotate_admin(admin, "ra-grace-2", retire_now=False, lock=NoAdminLock())

    assert first.outcome == "rotated"
    assert retired.outcome == "waiting" and retired.waiting_seconds > 3500
    assert again.outcome == "waiting", "no new rotation while the last one's old key waits"
    assert not key_state(backends, old.key_id)["deleted"]


def test_rotate_admin_refuses_a_key_from_the_environment(
    backends: LocalStack, services: Services
) -> None:
    """With TENANT_KEYS_LANGSMITH_ADMIN_KEY set (it wins over the secret), the admin rotation
    refuses in one line before it touches anything: it could not store what it mints."""
    assert services.admin_secret is not None
    before = services.admin_secret.describe_admin().versions
    plain = Services.from_settings(
        Settings(langsmith_admin_key=SecretStr(backends.langsmith.admin_key))
    )
    try:
        with pytest.raises(ConfigError, match="cannot store the key it would mint") as info:
            rotate_admin(plain, "ra-env", retire_now=True, lock=NoAdminLock())
    finally:
        plain.close()
    assert "\n" not in str(info.value)
    assert services.admin_secret.describe_admin().versions == before
