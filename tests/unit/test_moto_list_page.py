"""The local stack's ListSecrets serialises only the page it returns: every page, token and
filter answers exactly as moto's own does, secrets scheduled for deletion included."""

from __future__ import annotations

from typing import Any

import pytest
from moto.secretsmanager.models import SecretsManagerBackend

from devstack.moto_secrets import serialise_only_the_page


def _backend() -> SecretsManagerBackend:
    backend = SecretsManagerBackend("123456789012", "us-east-1")
    for i in range(25):
        name = f"tk/t{i:02d}" if i % 4 else f"other/t{i:02d}"
        backend.create_secret(
            name, "x", None, None, [{"Key": "n", "Value": str(i)}], None, None, [], False
        )
    backend.delete_secret("tk/t05", recovery_window_in_days=7, force_delete_without_recovery=False)
    return backend


def _every_page(
    backend: SecretsManagerBackend, filters: list[dict[str, Any]], size: int, deleted: bool
) -> list[tuple[list[str], str | None]]:
    pages, token = [], None
    while True:
        page, token = backend.list_secrets(filters, size, token, deleted)
        pages.append(([secret["Name"] for secret in page], token))
        if token is None:
            return pages


@pytest.mark.parametrize("deleted", [False, True])
@pytest.mark.parametrize("size", [1, 7, 100])
@pytest.mark.parametrize("filters", [[], [{"Key": "name", "Values": ["tk/"]}]])
def test_pages_match_motos_own(
    monkeypatch: pytest.MonkeyPatch, filters: list[dict[str, Any]], size: int, deleted: bool
) -> None:
    backend = _backend()
    motos_own = _every_page(backend, filters, size, deleted)
    # Restored after the test: the patch replaces the method on moto's class.
    monkeypatch.setattr(SecretsManagerBackend, "list_secrets", SecretsManagerBackend.list_secrets)
    serialise_only_the_page()

    assert _every_page(backend, filters, size, deleted) == motos_own
    assert sum(len(names) for names, _ in motos_own) > 0
