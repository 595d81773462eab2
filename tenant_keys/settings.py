"""All settings in one place, read from `TENANT_KEYS_*` environment variables.

Validated once at start-up; a missing or bad value raises a `ConfigError`
that names the variable to set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from tenant_keys.errors import ConfigError
from tenant_keys.models import IsolationMode

ENV_PREFIX = "TENANT_KEYS_"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
ADMIN_KEY_MISSING = (
    "TENANT_KEYS_LANGSMITH_ADMIN_KEY_SECRET is not set: name the Secrets Manager secret that "
    "holds the LangSmith admin key (README, The admin key), or set TENANT_KEYS_LANGSMITH_ADMIN_KEY "
    "for a quick experiment, or run `make demo`"
)
WORKSPACE_MODE_NEEDS_ORG = (
    "workspace isolation needs an org-scoped admin key: set TENANT_KEYS_LANGSMITH_ORG_ID and "
    "keep an Organization Admin service key in the admin key secret "
    "(TENANT_KEYS_LANGSMITH_ADMIN_KEY_SECRET)"
)
TAGGED_MODE_NEEDS_ORG = (
    "tagged isolation needs an org-scoped admin key (roles and access policies are organization "
    "settings): set TENANT_KEYS_LANGSMITH_ORG_ID, TENANT_KEYS_LANGSMITH_WORKSPACE_ID (the shared "
    "workspace) and keep an Organization Admin service key in the admin key secret "
    "(TENANT_KEYS_LANGSMITH_ADMIN_KEY_SECRET)"
)


class RateLimit(BaseModel):
    """`count / seconds`, as LangSmith publishes its limits; given as the text "1000/10"."""

    model_config = ConfigDict(frozen=True)

    count: Annotated[int, Field(gt=0)]
    seconds: Annotated[float, Field(gt=0)]

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: object) -> object:
        if isinstance(value, str):
            count, slash, seconds = value.replace(" ", "").partition("/")
            if not slash:
                raise ValueError("give it as count/seconds, e.g. 1000/10")
            return {"count": count, "seconds": seconds}
        return value

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # LangSmith: the admin credential mints and deletes tenant keys. For workspace isolation
    # it must be an org-scoped Organization Admin service key, with langsmith_org_id set.
    langsmith_url: str = "https://api.smith.langchain.com"
    # The admin key itself, for quick experiments: it is never rotated, and `rotate-admin`
    # refuses to run with it. When set it wins over the secret below.
    langsmith_admin_key: SecretStr | None = None
    # The production way: the name or ARN of the Secrets Manager secret holding the admin key
    # (tenant_keys/admin_layout.py), read where it is used and rotated by `rotate-admin`.
    langsmith_admin_key_secret: str | None = None
    # Workspace the project-mode tenants' projects and keys live in (sent as X-Tenant-Id);
    # unset means the admin key's own workspace (an org-scoped key has none: then set it).
    langsmith_workspace_id: str | None = None
    langsmith_org_id: str | None = None
    # Isolation of new tenants: "project" (a project in the shared workspace), "workspace"
    # (a workspace per tenant, reached by an org service key scoped to it) or "tagged" (a
    # project in the shared workspace that only the tenant's keys may read). docs/isolation.md
    isolation: IsolationMode = "project"
    langsmith_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    # LangSmith's limit on the calls the tool makes, per API key, as its rate-limit page states
    # it: count / interval in seconds ("any request with x-api-key": 1000 / 10). docs/rate-limits.md
    langsmith_rate_limit: RateLimit = RateLimit(count=1000, seconds=10.0)
    # The share of that limit a fan-out (rotation, reconcile, quota) paces itself at; the rest
    # is headroom that an emergency revoke uses, so it never waits behind a fan-out's 429s.
    fanout_rate_share: Annotated[float, Field(gt=0, le=1)] = 0.8
    # How long a revoke keeps retrying the delete of a suspect key before it gives up loudly.
    revoke_delete_deadline_seconds: Annotated[float, Field(gt=0)] = 60.0
    # Where a break-glass revoke (Prefect unreachable) writes its incident record, for
    # `tenant-keys incidents sync` to replay into Prefect later.
    incident_dir: Path = Path("~/.tenant-keys/incidents").expanduser()

    # AWS Secrets Manager: the standard boto3 credential chain; an endpoint
    # URL only for a local emulator (moto).
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    secret_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9/_+=.@-]+$")] = "langsmith/tenant"
    # Secrets Manager allows about 50 writes a second per account.
    secret_writes_per_second: Annotated[float, Field(gt=0)] = 50.0

    # Key lifecycle. The expiry is a backstop: a key that every retire
    # attempt failed to delete still dies on its own.
    key_lifetime_days: Annotated[int, Field(ge=1, le=365)] = 30
    # Seconds between promoting a new key and deleting the old one, so app
    # instances that cache the key catch up (keep it above their cache TTL).
    grace_seconds: Annotated[float, Field(ge=0)] = 0.0
    # Days an offboarded tenant's secret stays recoverable (AWS allows 7-30); its id can be
    # onboarded again only after that, or after `tenant-keys offboard --force`.
    secret_recovery_days: Annotated[int, Field(ge=7, le=30)] = 7
    default_trace_budget: Annotated[int, Field(ge=0)] = 100_000

    # How many tenants a fan-out works on at once.
    max_concurrency: Annotated[int, Field(ge=1, le=512)] = 64
    # How long a run waits for a tenant's lock (another run holds it) before it fails that
    # tenant, rather than queue behind a stuck run forever.
    lock_wait_seconds: Annotated[float, Field(gt=0)] = 600.0

    # Commands that take tenant locks refuse to run without PREFECT_API_URL (Prefect would start
    # a temporary server whose locks no other run sees); true allows it for a one-person test.
    allow_temporary_prefect: bool = False

    # The admin key (README, "The admin key"). Seconds a read of its secret is trusted before it
    # is read again (a 401 re-reads at once), the wait between promoting a new admin key and
    # deleting the old one (above that cache, so every process has moved on), the new key's
    # expiry as a backstop, and the age past which the posture report calls it overdue.
    admin_key_cache_seconds: Annotated[float, Field(gt=0)] = 60.0
    admin_grace_seconds: Annotated[float, Field(ge=0)] = 300.0
    admin_key_lifetime_days: Annotated[int, Field(ge=1, le=365)] = 90
    max_admin_key_age_days: Annotated[float, Field(gt=0)] = 35.0
    # The posture report flags a tenant key older than this (weekly rotation plus a day).
    max_key_age_days: Annotated[float, Field(gt=0)] = 8.0

    # Where the automations (`tenant-keys automations`) send notifications: a Slack incoming
    # webhook or any URL that takes a JSON POST. A secret: such URLs carry their own token.
    notify_webhook_url: SecretStr | None = None

    @field_validator("langsmith_url", "aws_endpoint_url")
    @classmethod
    def _https_unless_loopback(cls, value: str | None) -> str | None:
        """Keys travel in these requests' headers: plain http only to this machine."""
        if value is None:
            return None
        url = urlsplit(value.strip())
        if not url.hostname or url.scheme not in ("https", "http"):
            raise ValueError("give a URL such as https://api.smith.langchain.com")
        if url.scheme == "http" and url.hostname not in LOOPBACK:
            raise ValueError(
                "use https:// (plain http:// is allowed only to 127.0.0.1 or localhost)"
            )
        return value.strip()

    @field_validator("isolation")
    @classmethod
    def _workspace_mode_needs_an_org(cls, value: str, info: ValidationInfo) -> str:
        if value == "workspace" and not info.data.get("langsmith_org_id"):
            raise ValueError(WORKSPACE_MODE_NEEDS_ORG)
        if value == "tagged" and not info.data.get("langsmith_org_id"):
            raise ValueError(TAGGED_MODE_NEEDS_ORG)
        return value

    @field_validator("langsmith_admin_key", "langsmith_admin_key_secret", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """An exported but empty variable (a blank line of an env file) counts as unset."""
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _an_admin_key_source(self) -> Settings:
        secret = (self.langsmith_admin_key_secret or "").strip()
        if self.langsmith_admin_key is None and not secret:
            raise ValueError(ADMIN_KEY_MISSING)
        # A name under the tenant prefix would be listed, and offered to every sweep, as a
        # tenant's secret.
        prefix = self.tenant_secret_prefix
        if secret.startswith(prefix) or f":secret:{prefix}" in secret:
            raise ValueError(
                f"TENANT_KEYS_LANGSMITH_ADMIN_KEY_SECRET must name a secret outside the tenant "
                f"prefix {prefix}, e.g. langsmith/admin"
            )
        return self

    @property
    def tenant_secret_prefix(self) -> str:
        return self.secret_prefix.rstrip("/") + "/"

    def secret_name(self, tenant_id: str) -> str:
        return f"{self.tenant_secret_prefix}{tenant_id}"


def load_settings() -> Settings:
    """Read and validate settings, turning pydantic's report into one actionable line."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # a check across settings: its message names the variable
            raise ConfigError(str(first["msg"]).removeprefix("Value error, ")) from None
        variable = ENV_PREFIX + str(first["loc"][0]).upper() if first["loc"] else ENV_PREFIX
        if first["type"] == "missing":
            raise ConfigError(
                f"{variable} is not set: export it (see README, Settings) or run `make demo`"
            ) from None
        raise ConfigError(f"{variable} is invalid: {first['msg']}") from None
