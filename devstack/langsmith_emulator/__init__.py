"""A local LangSmith-compatible API server (emulator) for demos, tests and benchmarks.

    from devstack.langsmith_emulator import EmulatorServer, EmulatorControl

    with EmulatorServer(admin_key=None, port=0, latency_ms=0.0) as srv:
        client = langsmith.Client(api_url=srv.url, api_key=srv.admin_key)
        srv.control.inject_fault(method="POST", route="/api/v1/api-key", status=503)

See docs/langsmith-emulator.md.
"""

from .control import EmulatorControl
from .ratelimits import CLOUD_RATE_LIMITS, RateLimitClass, rate_limit_class
from .server import EmulatorServer
from .state import (
    ORGANIZATION_ADMIN,
    ORGANIZATION_USER,
    WORKSPACE_ADMIN,
    WORKSPACE_READER,
)

__all__ = [
    "CLOUD_RATE_LIMITS",
    "ORGANIZATION_ADMIN",
    "ORGANIZATION_USER",
    "WORKSPACE_ADMIN",
    "WORKSPACE_READER",
    "EmulatorControl",
    "EmulatorServer",
    "RateLimitClass",
    "rate_limit_class",
]
