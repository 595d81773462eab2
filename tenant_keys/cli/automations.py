"""`tenant-keys automations`: create or update the Prefect automations that notify a human."""

from __future__ import annotations

from typing import Annotated

import typer

from tenant_keys.cli.app import app, console, run
from tenant_keys.errors import BadInput


@app.command()
def automations(
    webhook_url: Annotated[
        str | None,
        typer.Option(
            help="Where notifications go (default: TENANT_KEYS_NOTIFY_WEBHOOK_URL).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create or update (by name) the automations: failed rotation, overdue retire, quota
    exceeded, key revoked. Safe to run again."""

    def action() -> None:
        url = resolve_webhook_url(webhook_url)
        require_prefect_api()
        from tasks.automations import BLOCK_NAME, apply_automations

        for name, change in apply_automations(url):
            console.print(f"{change:8} {name}")
        console.print(f"notifications go through the Prefect block '{BLOCK_NAME}'")

    run(action)


def resolve_webhook_url(given: str | None) -> str:
    """The option, else the setting; checked before anything is written."""
    url = (given or "").strip()
    if not url:
        from tenant_keys.settings import load_settings

        setting = load_settings().notify_webhook_url
        url = setting.get_secret_value().strip() if setting else ""
    if not url:
        raise BadInput(
            "no notification target: set TENANT_KEYS_NOTIFY_WEBHOOK_URL (a Slack incoming "
            "webhook or any JSON webhook) or pass --webhook-url"
        )
    if not url.startswith(("https://", "http://")):
        raise BadInput("the notification webhook URL must start with https:// (or http://)")
    return url


def require_prefect_api() -> None:
    """Automations live on a server: without PREFECT_API_URL they would land in a throwaway one."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise BadInput("PREFECT_API_URL is not set: point it at your Prefect server's /api")
