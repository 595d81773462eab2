"""Resource tags of a workspace: tag keys, their values, and the taggings that attach a value to a
resource (``/api/v1/workspaces/current/tag-keys``, ``.../taggings``, ``.../tags``).

A workspace starts with the keys LangSmith creates by default (``Application`` and
``Environment``, no values). Deleting a key deletes its values; deleting a value (or the
resource) deletes its taggings. Only projects can be tagged here: the emulator has no other
resource. A resource may carry several values, of the same key too (nothing documented forbids
it); access policies (abac.py) read a resource's tags as ``{key name: {values}}``.

Call everything under ``Store.lock``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .clock import iso
from .openapi import spec

DEFAULT_KEYS = ("Application", "Environment")  # created in every workspace, as LangSmith does
EMULATED_RESOURCE_TYPES = frozenset({"project"})
MAX_TAG_VALUE_IDS = 100  # tag_value_ids on a create: "maximum 100" (set-up-resource-tags)

# A resource's tags as access policies read them: tag key name -> the values it carries.
ResourceTags = dict[str, set[str]]


@dataclass(eq=False)
class TagKey:
    id: str
    key: str
    description: str | None
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        """``TagKey``."""
        return {
            "id": self.id,
            "key": self.key,
            "description": self.description,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


@dataclass(eq=False)
class TagValue:
    id: str
    tag_key_id: str
    value: str
    description: str | None
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        """``TagValue``."""
        return {
            "id": self.id,
            "tag_key_id": self.tag_key_id,
            "value": self.value,
            "description": self.description,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


@dataclass(eq=False)
class Tagging:
    id: str
    tag_value_id: str
    resource_type: str
    resource_id: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """``Tagging``."""
        return {
            "id": self.id,
            "tag_value_id": self.tag_value_id,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "created_at": iso(self.created_at),
        }


def resource_buckets() -> list[str]:
    """The fields of the spec's ``TaggingsByResourceType`` (``projects``, ``datasets``, ...)."""
    return list(spec()["components"]["schemas"]["TaggingsByResourceType"]["properties"])


@dataclass(eq=False)
class WorkspaceTags:
    keys: dict[str, TagKey] = field(default_factory=dict)
    values: dict[str, TagValue] = field(default_factory=dict)
    taggings: dict[str, Tagging] = field(default_factory=dict)
    # (resource_type, resource_id) -> tagging id -> tagging
    by_resource: dict[tuple[str, str], dict[str, Tagging]] = field(default_factory=dict)

    @classmethod
    def with_defaults(cls, now: datetime) -> WorkspaceTags:
        tags = cls()
        for name in DEFAULT_KEYS:
            tags.add_key(name, None, now)
        return tags

    # -------------------------------------------------------------- keys
    def add_key(self, key: str, description: str | None, now: datetime) -> TagKey:
        tag_key = TagKey(str(uuid.uuid4()), key, description, now, now)
        self.keys[tag_key.id] = tag_key
        return tag_key

    def key_named(self, key: str) -> TagKey | None:
        return next((k for k in self.keys.values() if k.key == key), None)

    def values_of(self, tag_key_id: str) -> list[TagValue]:
        return [v for v in self.values.values() if v.tag_key_id == tag_key_id]  # creation order

    def delete_key(self, tag_key_id: str) -> None:
        for value in self.values_of(tag_key_id):
            self.delete_value(value.id)
        self.keys.pop(tag_key_id, None)

    # -------------------------------------------------------------- values
    def add_value(
        self, tag_key_id: str, value: str, description: str | None, now: datetime
    ) -> TagValue:
        tag_value = TagValue(str(uuid.uuid4()), tag_key_id, value, description, now, now)
        self.values[tag_value.id] = tag_value
        return tag_value

    def value_named(self, tag_key_id: str, value: str) -> TagValue | None:
        return next((v for v in self.values_of(tag_key_id) if v.value == value), None)

    def delete_value(self, tag_value_id: str) -> None:
        for tagging in [t for t in self.taggings.values() if t.tag_value_id == tag_value_id]:
            self.delete_tagging(tagging.id)
        self.values.pop(tag_value_id, None)

    # -------------------------------------------------------------- taggings
    def find_tagging(
        self, tag_value_id: str, resource_type: str, resource_id: str
    ) -> Tagging | None:
        on = self.by_resource.get((resource_type, resource_id), {})
        return next((t for t in on.values() if t.tag_value_id == tag_value_id), None)

    def add_tagging(
        self, tag_value_id: str, resource_type: str, resource_id: str, now: datetime
    ) -> Tagging:
        tagging = Tagging(str(uuid.uuid4()), tag_value_id, resource_type, resource_id, now)
        self.taggings[tagging.id] = tagging
        self.by_resource.setdefault((resource_type, resource_id), {})[tagging.id] = tagging
        return tagging

    def delete_tagging(self, tagging_id: str) -> None:
        tagging = self.taggings.pop(tagging_id, None)
        if tagging is None:
            return
        where = (tagging.resource_type, tagging.resource_id)
        on = self.by_resource.get(where, {})
        on.pop(tagging_id, None)
        if not on:
            self.by_resource.pop(where, None)

    def drop_resource(self, resource_type: str, resource_id: str) -> None:
        """A deleted resource loses its taggings."""
        for tagging_id in list(self.by_resource.get((resource_type, resource_id), {})):
            self.delete_tagging(tagging_id)

    def taggings_of(self, resource_type: str, resource_id: str) -> list[Tagging]:
        return list(self.by_resource.get((resource_type, resource_id), {}).values())

    def resource_tags(self, resource_type: str, resource_id: str) -> ResourceTags:
        """``{tag key name: {values}}`` of a resource, as access policies evaluate it."""
        out: ResourceTags = {}
        for tagging in self.by_resource.get((resource_type, resource_id), {}).values():
            value = self.values[tagging.tag_value_id]
            out.setdefault(self.keys[value.tag_key_id].key, set()).add(value.value)
        return out

    def has_any(self, resource_type: str, resource_id: str, tag_value_ids: set[str]) -> bool:
        on = self.by_resource.get((resource_type, resource_id), {})
        return any(t.tag_value_id in tag_value_ids for t in on.values())

    # -------------------------------------------------------------- views
    def sorted_keys(self) -> list[TagKey]:
        return list(self.keys.values())  # creation order (dicts keep insertion order)

    def key_with_values_json(self, tag_key: TagKey) -> dict[str, Any]:
        """``TagKeyWithValues``."""
        return {**tag_key.to_json(), "values": [v.to_json() for v in self.values_of(tag_key.id)]}

    def resource_tags_json(self, resource_type: str, resource_id: str) -> list[dict[str, Any]]:
        """``TagKeyWithValuesAndTaggings`` of one resource: its keys, each with the values on it
        and their taggings of that resource."""
        by_key: dict[str, list[dict[str, Any]]] = {}
        for tagging in self.taggings_of(resource_type, resource_id):
            value = self.values[tagging.tag_value_id]
            entries = by_key.setdefault(value.tag_key_id, [])
            entry = next((e for e in entries if e["id"] == value.id), None)
            if entry is None:
                entry = {**value.to_json(), "taggings": []}
                entries.append(entry)
            entry["taggings"].append(tagging.to_json())
        return [
            {**k.to_json(), "values": by_key[k.id]} for k in self.sorted_keys() if k.id in by_key
        ]
