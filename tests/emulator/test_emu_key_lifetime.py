"""The org's key-lifetime caps: read and set through /api/v1/orgs/current/info (or the control
API), and honoured by both mints (POST /api/v1/api-key, POST /api/v1/orgs/current/service-keys)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.langsmith_emulator import EmulatorServer

from .conftest import ApiClient, new_key

INFO = "/api/v1/orgs/current/info"
SERVICE_KEYS = "/api/v1/orgs/current/service-keys"


def _in_days(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def _mint(api: ApiClient, emulator: Any, kind: str, **body: Any) -> Any:
    if kind == "workspace":
        return api.post(
            "/api/v1/api-key", key=emulator.admin_key, json={"description": "t", **body}
        )
    return api.post(SERVICE_KEYS, key=emulator.org_admin_key, org=emulator.org_id, json=body)


def test_org_info_is_readable_by_org_members(emulator: EmulatorServer, api: ApiClient) -> None:
    r = api.get(INFO, key=emulator.org_admin_key, org=emulator.org_id)
    assert r.status_code == 200  # and an OrganizationInfo (api fixture)
    info = r.json()
    assert info["id"] == emulator.org_id and info["is_personal"] is False
    assert info.get("max_service_key_expiry_days") is None
    assert api.get(INFO, key=emulator.admin_key, org=emulator.org_id).status_code == 200
    assert api.get(INFO, key=emulator.org_admin_key).status_code == 403  # no X-Organization-Id
    assert api.get(INFO).status_code == 401


def test_an_org_admin_sets_the_caps(emulator: EmulatorServer, api: ApiClient) -> None:
    okey, org = emulator.org_admin_key, emulator.org_id
    r = api.patch(INFO, key=okey, org=org, json={"max_service_key_expiry_days": 30})
    assert r.status_code == 200 and r.json()["max_service_key_expiry_days"] == 30
    assert api.get(INFO, key=okey, org=org).json()["max_service_key_expiry_days"] == 30
    # other settings are stored and read back; an explicit null clears a cap
    r = api.patch(INFO, key=okey, org=org, json={"display_name": "Acme", "invites_enabled": False})
    assert r.json()["display_name"] == "Acme" and r.json()["invites_enabled"] is False
    assert r.json()["max_service_key_expiry_days"] == 30
    r = api.patch(INFO, key=okey, org=org, json={"max_service_key_expiry_days": None})
    assert r.json()["max_service_key_expiry_days"] is None
    # only an org admin may
    r = api.patch(INFO, key=emulator.admin_key, org=org, json={"max_api_key_expiry_days": 1})
    assert r.status_code == 403


@pytest.mark.parametrize(
    "body",
    [{"max_api_key_expiry_days": 0}, {"max_pat_expiry_days": "x"}, {"display_name": "a/b"}],
)
def test_a_bad_update_is_422(
    emulator: EmulatorServer, api: ApiClient, body: dict[str, Any]
) -> None:
    r = api.patch(INFO, key=emulator.org_admin_key, org=emulator.org_id, json=body)
    assert r.status_code == 422


@pytest.mark.parametrize("kind", ["workspace", "service"])
@pytest.mark.parametrize("cap", ["max_api_key_expiry_days", "max_service_key_expiry_days"])
def test_a_mint_beyond_the_cap_or_without_expiry_is_refused(
    emulator: EmulatorServer, api: ApiClient, kind: str, cap: str
) -> None:
    emulator.control.configure_org(**{cap: 30})
    for body in ({}, {"expires_at": None}, {"expires_at": _in_days(31)}):
        r = _mint(api, emulator, kind, **body)
        assert r.status_code == 422, (body, r.text)
        (error,) = r.json()["detail"]  # HTTPValidationError
        assert error["loc"] == ["body", "expires_at"] and "30 days" in error["msg"]
    r = _mint(api, emulator, kind, expires_at=_in_days(29.9))
    assert r.status_code == 200 and r.json()["expires_at"] is not None


def test_the_stricter_cap_wins(emulator: EmulatorServer, api: ApiClient) -> None:
    info = emulator.control.configure_org(
        max_api_key_expiry_days=10, max_service_key_expiry_days=90
    )
    assert info["max_api_key_expiry_days"] == 10
    assert _mint(api, emulator, "service", expires_at=_in_days(20)).status_code == 422
    assert _mint(api, emulator, "service", expires_at=_in_days(9)).status_code == 200


def test_caps_bind_mints_only_and_reset_clears_them(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    before = new_key(api, emulator.admin_key)  # no expiry
    emulator.control.configure_org(max_service_key_expiry_days=7)
    assert api.get("/api/v1/sessions", key=before["key"]).status_code == 200
    emulator.control.configure_org(max_service_key_expiry_days=None)
    assert _mint(api, emulator, "workspace").status_code == 200
    emulator.control.configure_org(max_service_key_expiry_days=7)
    emulator.control.reset()
    assert emulator.control.org().get("max_service_key_expiry_days") is None
    assert _mint(api, emulator, "workspace").status_code == 200


def test_control_api_accepts_only_the_caps(emulator: EmulatorServer, api: ApiClient) -> None:
    r = api.http.post("/_emulator/org", json={"display_name": "x"})
    assert r.status_code == 422
    r = api.http.post("/_emulator/org", json={"max_pat_expiry_days": 0})
    assert r.status_code == 422
