"""`tenant-keys rotate-admin` (rotate the LangSmith admin key) and `tenant-keys admin-key init`
(put the first one in its secret)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr

from tenant_keys.cli.app import app, console, print_state, run
from tenant_keys.errors import BadInput, ConfigError

admin_app = typer.Typer(help="The LangSmith admin key the flows act with.", no_args_is_help=True)
app.add_typer(admin_app, name="admin-key")


@app.command(name="rotate-admin")
def rotate_admin(
    rotation_id: Annotated[str | None, typer.Option(help="Resume or repeat this rotation.")] = None,
) -> None:
    """Rotate the admin key: mint its successor with it, test, promote, and delete it after the
    grace window (TENANT_KEYS_ADMIN_GRACE_SECONDS). Needs the key in Secrets Manager."""

    def action() -> None:
        from flows.admin_rotation import rotate_admin_key
        from tenant_keys.admin_rotation import admin_store
        from tenant_keys.models import validate_rotation_id
        from tenant_keys.services import get_services

        admin_store(get_services())  # refused here, in one line, with the key in the environment
        if rotation_id is not None:
            validate_rotation_id(rotation_id)
        print_state(rotate_admin_key(rotation_id, return_state=True))

    run(action, takes_locks=True)


@admin_app.command(name="init")
def init(
    seed_key: Annotated[
        str | None,
        typer.Option(
            "--seed-key",
            help="'-': read the seed key (an admin key you made in LangSmith) from standard "
            "input. Default: TENANT_KEYS_LANGSMITH_ADMIN_KEY.",
        ),
    ] = None,
    seed_key_file: Annotated[
        Path | None, typer.Option("--seed-key-file", help="Read the seed key from this file.")
    ] = None,
    org_role_id: Annotated[
        str | None,
        typer.Option(help="An org service key as seed: the id of the Organization Admin role."),
    ] = None,
) -> None:
    """Create the admin key secret (TENANT_KEYS_LANGSMITH_ADMIN_KEY_SECRET): mint the tool's
    own admin key with a seed key, test it, store it. Delete the seed at LangSmith afterwards."""

    def action() -> None:
        from tenant_keys.admin_bootstrap import init_admin_secret
        from tenant_keys.services import get_services

        services = get_services()
        settings = services.settings
        if services.admin_secret is None:
            raise ConfigError(
                "TENANT_KEYS_LANGSMITH_ADMIN_KEY_SECRET is not set: name the secret to create "
                "(e.g. langsmith/admin)"
            )
        seed = _seed(seed_key, seed_key_file) or settings.langsmith_admin_key
        if seed is None:
            raise BadInput(
                "no seed key: pipe one to `--seed-key -` (an admin key made in LangSmith's UI)"
            )
        done = init_admin_secret(
            services.langsmith.with_key(seed),
            services.admin_secret,
            org_id=settings.langsmith_org_id,
            workspace_id=settings.langsmith_workspace_id,
            org_role_id=org_role_id,
            lifetime_days=settings.admin_key_lifetime_days,
        )
        console.print(
            f"admin key secret {done.secret} created: key {done.key_id} ({done.kind} admin key, "
            f"minted by the tool). Now delete the seed key in LangSmith (the tool never stored "
            "it), and unset TENANT_KEYS_LANGSMITH_ADMIN_KEY if it is set: it wins over the secret."
        )

    run(action, needs_settings=True)


def _seed(option: str | None, path: Path | None) -> SecretStr | None:
    """The seed key from standard input (`-`) or a file; never from the command line, where it
    would land in the shell's history and the process list."""
    if option is not None and option != "-":
        raise BadInput("--seed-key takes '-' (the key on standard input), never the key itself")
    if option == "-":
        text = sys.stdin.readline().strip()
    elif path is not None:
        if not path.is_file():
            raise BadInput(f"--seed-key-file {path} does not exist")
        text = path.read_text().strip()
    else:
        return None
    if not text:
        raise BadInput("the seed key is empty: give the whole key on standard input")
    return SecretStr(text)
