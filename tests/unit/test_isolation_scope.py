"""The isolation mode as stored in a tenant secret's tags, and the settings that allow it."""

from __future__ import annotations

import pytest

from tenant_keys.errors import BadInput, ConfigError
from tenant_keys.keys import PROJECT_HOME, KeyHome, tagged_home, workspace_home
from tenant_keys.layout import TAG_ISOLATION, TAG_POLICY, TAG_ROLE, TAG_TAG_VALUE, TAG_WORKSPACE
from tenant_keys.settings import load_settings
from tenant_keys.workspaces import isolation_for


def test_a_secret_without_the_tag_is_in_project_mode() -> None:
    assert KeyHome.of({}) == PROJECT_HOME
    assert KeyHome.of({TAG_ISOLATION: "project", TAG_WORKSPACE: "ignored"}) == PROJECT_HOME


def test_workspace_home_round_trips_through_the_tags() -> None:
    scope = workspace_home("ws-1")
    assert scope.tags() == {TAG_ISOLATION: "workspace", TAG_WORKSPACE: "ws-1"}
    assert KeyHome.of(scope.tags()) == scope


def test_workspace_mode_without_an_org_is_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TENANT_KEYS_LANGSMITH_ADMIN_KEY", "lsv2_sk_x")
    monkeypatch.delenv("TENANT_KEYS_LANGSMITH_ORG_ID", raising=False)
    monkeypatch.setenv("TENANT_KEYS_ISOLATION", "workspace")
    with pytest.raises(ConfigError, match=r"TENANT_KEYS_ISOLATION.*TENANT_KEYS_LANGSMITH_ORG_ID"):
        load_settings()

    monkeypatch.setenv("TENANT_KEYS_LANGSMITH_ORG_ID", "org-1")
    settings = load_settings()
    assert settings.isolation == "workspace"
    assert isolation_for(settings, None) == "workspace"
    assert isolation_for(settings, "project") == "project"
    with pytest.raises(BadInput, match="'project', 'workspace' or 'tagged'"):
        isolation_for(settings, "tenant")


def test_tagged_home_round_trips_through_the_tags() -> None:
    home = tagged_home("role-1", "policy-1", "value-1")
    assert home.tags() == {
        TAG_ISOLATION: "tagged",
        TAG_ROLE: "role-1",
        TAG_POLICY: "policy-1",
        TAG_TAG_VALUE: "value-1",
    }
    assert KeyHome.of(home.tags()) == home


def test_tagged_mode_without_an_org_is_refused_before_any_side_effect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TENANT_KEYS_LANGSMITH_ADMIN_KEY", "lsv2_sk_x")
    monkeypatch.delenv("TENANT_KEYS_LANGSMITH_ORG_ID", raising=False)
    monkeypatch.setenv("TENANT_KEYS_ISOLATION", "tagged")
    with pytest.raises(ConfigError, match=r"tagged isolation.*TENANT_KEYS_LANGSMITH_ORG_ID"):
        load_settings()
    monkeypatch.setenv("TENANT_KEYS_ISOLATION", "project")
    with pytest.raises(BadInput, match="tagged isolation needs an org-scoped admin key"):
        isolation_for(load_settings(), "tagged")
