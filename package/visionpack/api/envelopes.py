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
# A message names the problem and at most a short prefix of the input (services/fields.py
# previews values); this cap keeps any other detail from carrying a client's payload back.
MAX_DETAIL_CHARS = 300


def capped(detail: str) -> str:
    return detail if len(detail) <= MAX_DETAIL_CHARS else detail[:MAX_DETAIL_CHARS] + "…"


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
    msg = "Internal server error" if status == 500 else capped(err.detail)
    if isinstance(err, LicenseError):
        msg = err.easydl_msg  # the precise reason goes to the log, not to clients
    return {"logId": log_id, "errorCode": status, "errorMsg": msg}, status


def front_error(err: VisionpackError, log_id: int | None = None, status: int | None = None) -> dict[str, Any]:
    """An error body both dialects read, for answers given before a route is known (the HTTP
    front, unknown paths and methods): EasyDL's ``log_id``/``error_code`` and PaddleX's
    ``logId``/``errorCode``. Both ids are the same number (``logId`` as a string), so either
    finds the one log line."""
    log_id = easydl_log_id() if log_id is None else log_id
    msg = "Internal server error" if err.http_status == 500 else capped(err.detail)
    return {
        "log_id": log_id,
        "error_code": err.easydl_code,
        "error_msg": err.easydl_msg,
        "logId": str(log_id),
        "errorCode": status or err.http_status,
        "errorMsg": msg,
    }
