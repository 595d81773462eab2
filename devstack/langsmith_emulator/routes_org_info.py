"""The organization's info and settings: ``GET``/``PATCH /api/v1/orgs/current/info``.

Of the settings, only the key-lifetime caps (``max_api_key_expiry_days``,
``max_service_key_expiry_days``) change what the emulator does: key mints honour them
(routes_keys.py). The other ``OrganizationUpdate`` fields are stored and read back.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.responses import Response

from .auth import Principal, org_admin, org_member
from .models import OrganizationUpdate
from .responses import ok
from .state import Organization, Store

router = APIRouter(tags=["orgs"])


def apply_update(store: Store, org: Organization, update: OrganizationUpdate) -> None:
    """Set the fields the request names (an explicit null clears a setting)."""
    changes = update.model_dump(exclude_unset=True)
    with store.lock:
        name = changes.pop("display_name", None)
        if name is not None:
            org.display_name = name
        org.settings.update(changes)


def org_info_json(org: Organization) -> dict[str, Any]:
    """``OrganizationInfo``: a shared (not personal) Enterprise organization."""
    return {
        "id": org.id,
        "display_name": org.display_name,
        "config": {
            "plan_tier": "enterprise",
            "can_use_rbac": True,
            "can_use_audit_logs": True,
            "can_set_api_key_max_expiry": True,
            "enable_querying_v2_endpoints": True,
            "can_use_abac": org.abac.enabled,  # the /_emulator/abac switch
        },
        "is_personal": False,
        "tier": "enterprise",
        "permissions": [],
        **org.settings,
    }


@router.get("/orgs/current/info")
async def get_org_info(principal: Annotated[Principal, Depends(org_member)]) -> Response:
    store = principal.store
    with store.lock:
        return ok(org_info_json(store.orgs[principal.key.org_id]))


@router.patch("/orgs/current/info")
async def patch_org_info(
    body: OrganizationUpdate, principal: Annotated[Principal, Depends(org_admin)]
) -> Response:
    store = principal.store
    org = store.orgs[principal.key.org_id]
    apply_update(store, org, body)
    with store.lock:
        return ok(org_info_json(org))
