"""``python -m devstack.langsmith_emulator --port N --admin-key ...``

Prints the URL, ids and short keys (never plaintext keys) to stdout. To hand generated keys
to another process, use ``--info-file PATH`` (written with mode 0600).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

from .server import EmulatorServer, serve_forever


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.langsmith_emulator")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument(
        "--admin-key",
        default=os.environ.get("LANGSMITH_EMULATOR_ADMIN_KEY"),
        help="workspace admin key to accept (default: generated); env LANGSMITH_EMULATOR_ADMIN_KEY",
    )
    parser.add_argument(
        "--org-admin-key",
        default=os.environ.get("LANGSMITH_EMULATOR_ORG_ADMIN_KEY"),
        help="org admin service key (default: generated); env LANGSMITH_EMULATOR_ORG_ADMIN_KEY",
    )
    parser.add_argument("--org-id", default=None, help="organization UUID (default: random)")
    parser.add_argument("--workspace-id", default=None, help="default workspace UUID")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every call")
    parser.add_argument(
        "--rate-limits", action="store_true", help="enable LangSmith Cloud's rate limits"
    )
    parser.add_argument("--info-file", default=None, help="write url, ids and keys as JSON here")
    args = parser.parse_args(argv)

    srv = EmulatorServer(
        admin_key=args.admin_key,
        port=args.port,
        latency_ms=args.latency_ms,
        org_admin_key=args.org_admin_key,
        org_id=args.org_id,
        workspace_id=args.workspace_id,
    )
    if args.rate_limits:
        srv.controls.configure(rate_limits=True)
    sock = srv._bind()
    srv.port = sock.getsockname()[1]
    info = {
        "url": srv.url,
        "org_id": srv.org_id,
        "workspace_id": srv.workspace_id,
        "admin_key_id": srv.admin_key_id,
        "org_admin_key_id": srv.org_admin_key_id,
    }
    if args.info_file:
        fd = os.open(args.info_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({**info, "admin_key": srv.admin_key, "org_admin_key": srv.org_admin_key}, fh)
    shown = {
        **info,
        "admin_short_key": srv.store.keys[srv.admin_key_id].short_key,
        "org_admin_short_key": srv.store.keys[srv.org_admin_key_id].short_key,
    }
    print(json.dumps(shown), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        serve_forever(srv, sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
