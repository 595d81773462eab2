"""moto's Secrets Manager, served without `moto_server`'s multi-service dispatcher.

`moto_server` routes each request through one lock, under which it walks moto's
~150 service packages on disk to find the backend. A rotation fan-out of 64
threads queued on that lock: moto answered ~110 calls/s with a third of a core
busy, and every Secrets Manager call took ~125 ms. The local stack needs only
Secrets Manager (and `/moto-api/` for health and resets), so this serves moto's
own apps for those two directly: 770 calls/s against 418 for `moto_server`,
64 threads, measured on the 2-core machine. Same backend, same responses.

moto's secret store finds a secret by walking every secret it holds (a name and an ARN
compared for each), several times per call: with 10,000 tenants that walk was most of
moto's CPU in a rotation. `index_secrets_by_name` looks a name up directly first, and walks
only for ARNs, as moto does. Its ListSecrets serialises every matching secret for each page,
then returns one page of them: `serialise_only_the_page` serialises the page.

    python -m devstack.moto_secrets --port 5000
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from moto.core import responses
from moto.moto_server import werkzeug_app
from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
from moto.secretsmanager import models as secretsmanager_models
from moto.secretsmanager.models import (
    FakeSecret,
    ReplicaSecret,
    SecretsManagerBackend,
    SecretsStore,
)
from werkzeug.serving import BaseWSGIServer, make_server

HOST = "127.0.0.1"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class CallCounter:
    """Secrets Manager calls answered, per secret and operation, for tests that count what a
    protocol costs (`GET /_calls?secret=NAME`): moto keeps no such record of its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, Counter[str]] = {}

    def count(self, environ: dict[str, Any]) -> dict[str, Any]:
        """Count the request; returns a WSGI environ whose body can still be read."""
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if not target.startswith("secretsmanager."):
            return environ
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(size) if size else b""
        try:
            secret = str(json.loads(body or b"{}").get("SecretId") or json.loads(body)["Name"])
        except (ValueError, KeyError):
            secret = ""
        with self._lock:
            self._counts.setdefault(secret, Counter())[target.removeprefix("secretsmanager.")] += 1
        return {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}

    def of(self, secret: str) -> dict[str, int]:
        with self._lock:
            return dict(self._counts.get(secret, Counter()))


def create_app() -> WSGIApp:
    """moto's Secrets Manager app, with moto's control API under `/moto-api/` and the call
    counts under `/_calls`."""
    secrets = create_backend_app("secretsmanager")
    moto_api = create_backend_app("moto_api")
    counter = CallCounter()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path == "/_calls":
            secret = parse_qs(str(environ.get("QUERY_STRING", ""))).get("secret", [""])[0]
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(counter.of(secret)).encode()]
        if path.startswith("/moto-api"):
            return moto_api(environ, start_response)
        return secrets(counter.count(environ), start_response)

    return app


def index_secrets_by_name() -> None:
    """moto's `SecretsStore` keeps secrets by name: a name is found without the walk. Anything
    else (a full or partial ARN) still takes moto's own way."""
    walk_get, walk_contains = SecretsStore.get, SecretsStore.__contains__

    def get(self: SecretsStore, key: str) -> FakeSecret | ReplicaSecret | None:
        found = dict.get(self, key)
        return found if found is not None else walk_get(self, key)

    def getitem(self: SecretsStore, key: str) -> FakeSecret | ReplicaSecret:
        found = get(self, key)
        if found is None:
            raise KeyError(key)
        return found

    def contains(self: SecretsStore, key: str) -> bool:
        return dict.__contains__(self, key) or walk_contains(self, key)

    SecretsStore.get = get  # type: ignore[method-assign]
    SecretsStore.__getitem__ = getitem  # type: ignore[method-assign]
    SecretsStore.__contains__ = contains  # type: ignore[method-assign]


def serialise_only_the_page() -> None:
    """moto's `list_secrets` with the same filter, order and offset token, but `to_dict` only
    for the secrets of the page asked for: a page no longer serialises every secret listed."""

    def list_secrets(
        self: SecretsManagerBackend,
        filters: list[dict[str, Any]],
        max_results: int | None = secretsmanager_models.MAX_RESULTS_DEFAULT,
        next_token: str | None = None,
        include_planned_deletion: bool = False,
    ) -> tuple[list[dict[str, Any]], str | None]:
        matching = [
            secret
            for secret in self.secrets.values()
            if (include_planned_deletion or not getattr(secret, "deleted_date", None))
            and secretsmanager_models._matches(secret, filters)
        ]
        start = int(next_token or 0)
        end = start + int(max_results or secretsmanager_models.MAX_RESULTS_DEFAULT)
        page = [secret.to_dict() for secret in matching[start:end]]
        return page, str(end) if end < len(matching) else None

    SecretsManagerBackend.list_secrets = list_secrets  # type: ignore[method-assign]


def skip_per_request_work() -> None:
    """Two things moto's server does on every request that the local stack never needs:
    listing the response class's methods (`inspect.getmembers`; they do not change) and
    adding CORS headers (no browser calls it)."""
    responses.method_names_from_class = functools.cache(responses.method_names_from_class)
    werkzeug_app.DISABLE_GLOBAL_CORS = True


def make(port: int) -> BaseWSGIServer:
    """A threaded server on 127.0.0.1:`port` (0: any free port); call `serve_forever()`."""
    # werkzeug logs every request line; the stack's users want their own output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    index_secrets_by_name()
    serialise_only_the_page()
    skip_per_request_work()
    return make_server(HOST, port, create_app(), threaded=True, request_handler=MotoRequestHandler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto's Secrets Manager on 127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    make(parser.parse_args(argv).port).serve_forever()


if __name__ == "__main__":
    main()
