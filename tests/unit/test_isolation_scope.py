"""The isolation mode as stored in a tenant secret's tags, and the settings that allow it."""

from __future__ import annotations

import pytest

from tenant_keys.errors import BadInput, ConfigError
from tenant_keys.keys import PROJECT_HOME, KeyHome, workspace_home
from tenant_keys.layout import TAG_ISOLATION, TAG_WORKSPACE
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
    with pytest.raises(BadInput, match="'project' or 'workspace'"):
        isolation_for(settings, "tenant")
