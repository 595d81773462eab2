"""Resource tags: ``/api/v1/workspaces/current/tag-keys`` (and their ``tag-values``),
``/api/v1/workspaces/current/taggings`` and the ``/api/v1/workspaces/current/tags`` reads.

Workspace paths (``X-API-Key``, ``X-Tenant-Id``). Reads need ``workspaces:read``, writes
``workspaces:manage`` (rbac.py). Errors: 404 ``{"detail"}`` for an unknown key, value, tagging
or resource; 409 for a duplicate key name, value (within its key) or tagging; 422 for a body
outside the spec's schema or a resource type the emulator does not hold (only projects).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from .audit import note_resources
from .auth import Principal, ws_read, ws_write
from .errors import ApiError, validation_error
from .models import (
    ListTagsForResourceRequest,
    TaggingCreate,
    TagKeyCreate,
    TagKeyUpdate,
    TagValueCreate,
    TagValueUpdate,
)
from .openapi import enum_values
from .responses import ok
from .state import Workspace
from .tags import EMULATED_RESOURCE_TYPES, TagKey, TagValue, WorkspaceTags, resource_buckets

router = APIRouter(tags=["workspaces"])

KEYS = "/workspaces/current/tag-keys"
VALUES = KEYS + "/{tag_key_id}/tag-values"


def _ws(principal: Principal) -> Workspace:
    assert principal.workspace is not None
    return principal.workspace


def _key(tags: WorkspaceTags, tag_key_id: UUID) -> TagKey:
    tag_key = tags.keys.get(str(tag_key_id))
    if tag_key is None:
        raise ApiError(404, "Tag key not found")
    return tag_key


def _value(tags: WorkspaceTags, tag_key_id: UUID, tag_value_id: UUID) -> TagValue:
    _key(tags, tag_key_id)
    value = tags.values.get(str(tag_value_id))
    if value is None or value.tag_key_id != str(tag_key_id):
        raise ApiError(404, "Tag value not found")
    return value


# ------------------------------------------------------------------ tag keys


@router.get(KEYS)
async def list_tag_keys(principal: Annotated[Principal, Depends(ws_read)]) -> Response:
    with principal.store.lock:
        return ok([k.to_json() for k in _ws(principal).tags.sorted_keys()])


@router.post(KEYS)
async def create_tag_key(
    request: Request, body: TagKeyCreate, principal: Annotated[Principal, Depends(ws_write)]
) -> Response:
    store = principal.store
    with store.lock:
        tags = _ws(principal).tags
        if tags.key_named(body.key) is not None:
            raise ApiError(409, "Tag key already exists")
        tag_key = tags.add_key(body.key, body.description, store.clock.now())
    note_resources(request, tag_key.id)
    return ok(tag_key.to_json())


@router.get(KEYS + "/{tag_key_id}")
async def get_tag_key(
    tag_key_id: UUID, principal: Annotated[Principal, Depends(ws_read)]
) -> Response:
    with principal.store.lock:
        return ok(_key(_ws(principal).tags, tag_key_id).to_json())


@router.patch(KEYS + "/{tag_key_id}")
async def update_tag_key(
    tag_key_id: UUID, body: TagKeyUpdate, principal: Annotated[Principal, Depends(ws_write)]
) -> Response:
    """Fields sent are set (``description: null`` clears it); ``key: null`` keeps the name."""
    store = principal.store
    changes = body.model_dump(exclude_unset=True)
    with store.lock:
        tags = _ws(principal).tags
        tag_key = _key(tags, tag_key_id)
        new_name = changes.get("key")
        if new_name is not None and new_name != tag_key.key:
            if tags.key_named(new_name) is not None:
                raise ApiError(409, "Tag key already exists")
            tag_key.key = new_name
        if "description" in changes:
            tag_key.description = changes["description"]
        tag_key.updated_at = store.clock.now()
        return ok(tag_key.to_json())


@router.delete(KEYS + "/{tag_key_id}")
async def delete_tag_key(
    tag_key_id: UUID, principal: Annotated[Principal, Depends(ws_write)]
) -> Response:
    """Deletes the key, its values and their taggings."""
    with principal.store.lock:
        tags = _ws(principal).tags
        tags.delete_key(_key(tags, tag_key_id).id)
    return ok(None)


# ------------------------------------------------------------------ tag values


@router.post(VALUES)
async def create_tag_value(
    request: Request,
    tag_key_id: UUID,
    body: TagValueCreate,
    principal: Annotated[Principal, Depends(ws_write)],
) -> Response:
    store = principal.store
    with store.lock:
        tags = _ws(principal).tags
        tag_key = _key(tags, tag_key_id)
        if tags.value_named(tag_key.id, body.value) is not None:
            raise ApiError(409, "Tag value already exists")
        value = tags.add_value(tag_key.id, body.value, body.description, store.clock.now())
    note_resources(request, value.id)
    return ok(value.to_json())


@router.get(VALUES)
async def list_tag_values(
    tag_key_id: UUID, principal: Annotated[Principal, Depends(ws_read)]
) -> Response:
    with principal.store.lock:
        tags = _ws(principal).tags
        return ok([v.to_json() for v in tags.values_of(_key(tags, tag_key_id).id)])


@router.get(VALUES + "/{tag_value_id}")
async def get_tag_value(
    tag_key_id: UUID, tag_value_id: UUID, principal: Annotated[Principal, Depends(ws_read)]
) -> Response:
    with principal.store.lock:
        return ok(_value(_ws(principal).tags, tag_key_id, tag_value_id).to_json())


@router.patch(VALUES + "/{tag_value_id}")
async def update_tag_value(
    tag_key_id: UUID,
    tag_value_id: UUID,
    body: TagValueUpdate,
    principal: Annotated[Principal, Depends(ws_write)],
) -> Response:
    """Fields sent are set (``description: null`` clears it); ``value: null`` keeps it."""
    store = principal.store
    changes = body.model_dump(exclude_unset=True)
    with store.lock:
        tags = _ws(principal).tags
        value = _value(tags, tag_key_id, tag_value_id)
        new_value = changes.get("value")
        if new_value is not None and new_value != value.value:
            if tags.value_named(value.tag_key_id, new_value) is not None:
                raise ApiError(409, "Tag value already exists")
            value.value = new_value
        if "description" in changes:
            value.description = changes["description"]
        value.updated_at = store.clock.now()
        return ok(value.to_json())


@router.delete(VALUES + "/{tag_value_id}")
async def delete_tag_value(
    tag_key_id: UUID, tag_value_id: UUID, principal: Annotated[Principal, Depends(ws_write)]
) -> Response:
    """Deletes the value and every tagging with it."""
    with principal.store.lock:
        tags = _ws(principal).tags
        tags.delete_value(_value(tags, tag_key_id, tag_value_id).id)
    return ok(None)


# ------------------------------------------------------------------ taggings


def _resource_name(ws: Workspace, resource_type: str, resource_id: str) -> str | None:
    """The tagged resource's name; None when the workspace has no such resource."""
    if resource_type == "project":
        project = ws.projects.get(resource_id)
        return project.name if project else None
    return None


@router.post("/workspaces/current/taggings")
async def create_tagging(
    request: Request, body: TaggingCreate, principal: Annotated[Principal, Depends(ws_write)]
) -> Response:
    store, ws = principal.store, _ws(principal)
    if body.resource_type not in EMULATED_RESOURCE_TYPES:
        raise validation_error(
            ["body", "resource_type"],
            f"the emulator holds no {body.resource_type} resources: only projects can be tagged",
        )
    value_id, resource_id = str(body.tag_value_id), str(body.resource_id)
    with store.lock:
        tags = ws.tags
        if value_id not in tags.values:
            raise ApiError(404, "Tag value not found")
        if _resource_name(ws, body.resource_type, resource_id) is None:
            raise ApiError(404, f"{body.resource_type} {resource_id} not found")
        if tags.find_tagging(value_id, body.resource_type, resource_id) is not None:
            raise ApiError(409, "Tagging already exists")
        tagging = tags.add_tagging(value_id, body.resource_type, resource_id, store.clock.now())
    note_resources(request, tagging.id)
    return ok(tagging.to_json())


def _taggings_response(ws: Workspace, value: TagValue) -> dict[str, Any]:
    """``TaggingsResponse``: a value with the resources it tags, grouped by resource type."""
    tags = ws.tags
    resources: dict[str, list[dict[str, Any]]] = {bucket: [] for bucket in resource_buckets()}
    tagged = [t for t in tags.taggings.values() if t.tag_value_id == value.id]  # creation order
    for tagging in tagged:
        name = _resource_name(ws, tagging.resource_type, tagging.resource_id)
        resources[tagging.resource_type + "s"].append(
            {
                "tagging_id": tagging.id,
                "resource_name": name or "",
                "resource_id": tagging.resource_id,
            }
        )
    return {
        "tag_key": tags.keys[value.tag_key_id].key,
        "tag_key_id": value.tag_key_id,
        "tag_value": value.value,
        "tag_value_id": value.id,
        "resources": resources,
    }


@router.get("/workspaces/current/taggings")
async def list_taggings(
    principal: Annotated[Principal, Depends(ws_read)], tag_value_id: UUID | None = None
) -> Response:
    """One ``TaggingsResponse`` per tag value (only ``tag_value_id``'s when given)."""
    ws = _ws(principal)
    with principal.store.lock:
        tags = ws.tags
        if tag_value_id is not None:
            value = tags.values.get(str(tag_value_id))
            if value is None:
                raise ApiError(404, "Tag value not found")
            return ok([_taggings_response(ws, value)])
        values = [v for k in tags.sorted_keys() for v in tags.values_of(k.id)]
        return ok([_taggings_response(ws, v) for v in values])


@router.delete("/workspaces/current/taggings/{tagging_id}")
async def delete_tagging(
    tagging_id: UUID, principal: Annotated[Principal, Depends(ws_write)]
) -> Response:
    with principal.store.lock:
        tags = _ws(principal).tags
        if str(tagging_id) not in tags.taggings:
            raise ApiError(404, "Tagging not found")
        tags.delete_tagging(str(tagging_id))
    return ok(None)


# ------------------------------------------------------------------ reads


@router.get("/workspaces/current/tags")
async def list_tags(principal: Annotated[Principal, Depends(ws_read)]) -> Response:
    """Every key with its values (``TagKeyWithValues``)."""
    with principal.store.lock:
        tags = _ws(principal).tags
        return ok([tags.key_with_values_json(k) for k in tags.sorted_keys()])


@router.get("/workspaces/current/tags/resource")
async def list_tags_for_resource(
    principal: Annotated[Principal, Depends(ws_read)],
    resource_type: str,
    resource_id: UUID,
) -> Response:
    """The tags on one resource (an untagged or unknown resource has none)."""
    if resource_type not in enum_values("ResourceType"):
        raise validation_error(["query", "resource_type"], "not a ResourceType")
    with principal.store.lock:
        return ok(_ws(principal).tags.resource_tags_json(resource_type, str(resource_id)))


@router.post("/workspaces/current/tags/resources")
async def list_tags_for_resources(
    body: list[ListTagsForResourceRequest], principal: Annotated[Principal, Depends(ws_read)]
) -> Response:
    """``{resource_id: [TagKeyWithValuesAndTaggings]}`` for each resource asked about."""
    with principal.store.lock:
        tags = _ws(principal).tags
        return ok(
            {
                str(r.resource_id): tags.resource_tags_json(r.resource_type, str(r.resource_id))
                for r in body
            }
        )
