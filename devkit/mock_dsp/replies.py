"""What the API answers: a status, a JSON body (or raw bytes under faults) and headers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.responses import Response

JSON_MEDIA_TYPE = "application/json"


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    media_type: str = JSON_MEDIA_TYPE

    @property
    def content(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body, separators=(",", ":")).encode()

    def with_headers(self, headers: dict[str, str]) -> Reply:
        return replace(self, headers={**self.headers, **headers})

    def to_response(self) -> Response:
        return Response(self.content, self.status, self.headers, self.media_type)


def error_reply(
    status: int, code: str, message: str, field: str | None = None, **headers: str
) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message, "field": field}}, headers)


class ApiError(Exception):
    """A request the DSP refuses; `reply()` is the error body the contract defines."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def reply(self) -> Reply:
        return error_reply(self.status, self.code, self.message, self.field)


def validation_error(field: str | None, message: str) -> ApiError:
    return ApiError(422, "validation_error", message, field)
