"""``GET /api/v1/info`` (no auth): what the SDK reads to choose its ingest path."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from .responses import ok

router = APIRouter(tags=["info"])

# A parseable version at or above 0.16.0: the SDK checks it before its /v2 resources
# (client.runs) and logs a warning on an older or unparseable one.
EMULATOR_VERSION = "0.16.0+emulator"

INFO = {
    "version": EMULATOR_VERSION,
    "git_sha": None,
    "license_expiration_time": None,
    "batch_ingest_config": {
        "use_multipart_endpoint": True,
        "scale_up_qsize_trigger": 1000,
        "scale_up_nthreads_limit": 16,
        "scale_down_nempty_trigger": 4,
        "size_limit": 100,
        "size_limit_bytes": 20971520,
    },
    "instance_flags": {
        "zstd_compression_enabled": False,
        "ch_query_enabled": True,
        "sdb_query_enabled": False,
        "emulator": True,
    },
    "customer_info": None,
}


@router.get("/info")
async def info() -> Response:
    return ok(INFO)
