"""The two response dialects, and nothing else.

EasyDL: ``{"log_id": <number>, ...result}`` on success, ``{"error_code", "error_msg"}`` on
failure (HTTP 200 as EasyDL answers, except the codes that mean "retry later"/"forbidden").
PaddleX: ``{"logId", "errorCode": 0, "errorMsg": "Success", "result"}``, errors with
``errorCode`` equal to the HTTP status, as PaddleX serving's infra/models.py does.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from typing import Any

from ..errors import (
    LicenseError,
    RequestError,
    VisionpackError,
)

_rng = random.Random(os.getpid() ^ time.time_ns())


def easydl_log_id() -> int:
    # Millisecond clock in the high bits, 10 random bits below: sortable, unique enough per
    # worker, and below 2**53 so JavaScript clients keep every digit.
    return (int(time.time() * 1000) << 10) | _rng.getrandbits(10)


def paddlex_log_id() -> str:
    return str(uuid.uuid4())


def easydl_ok(log_id: int, result: dict[str, Any]) -> dict[str, Any]:
    return {"log_id": log_id, **result}


def easydl_error(err: VisionpackError) -> tuple[dict[str, Any], int]:
    body = {"error_code": err.easydl_code, "error_msg": err.easydl_msg}
    # EasyDL answers request errors with 200 + error_code; clients key on error_code.
    # Capacity and auth failures also carry a meaningful HTTP status for load balancers.
    status = 200 if isinstance(err, RequestError) else err.http_status
    return body, status


def paddlex_ok(log_id: str, result: dict[str, Any]) -> dict[str, Any]:
    return {"logId": log_id, "errorCode": 0, "errorMsg": "Success", "result": result}


def paddlex_status(err: VisionpackError) -> int:
    return err.http_status


def paddlex_error(log_id: str, err: VisionpackError) -> tuple[dict[str, Any], int]:
    status = paddlex_status(err)
    msg = "Internal server error" if status == 500 else err.detail
    if isinstance(err, LicenseError):
        msg = err.easydl_msg  # the precise reason goes to the log, not to clients
    return {"logId": log_id, "errorCode": status, "errorMsg": msg}, status
