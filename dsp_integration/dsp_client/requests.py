"""The DSP requests the service makes, as plain values: built once, audited, then sent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from dsp_integration.contracts.entity_types import EntityType, collection_path

METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
MAX_IDEMPOTENCY_KEY_LENGTH = 255


@dataclass(frozen=True)
class DspRequest:
    """One HTTP request to the DSP. `path` is relative to the DSP base URL."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    idempotency_key: str | None = None
    # Why the service sends it, when no user step asked for it (stored with the audit row).
    note: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unsupported DSP method {self.method!r}")
        if not self.path.startswith("/"):
            raise ValueError(f"DSP path must start with '/': {self.path!r}")
        if self.body is not None:
            if not isinstance(self.body, dict):
                raise ValueError(f"DSP request body must be a JSON object, not {type(self.body)}")
            encode_body(self.body)
        if self.idempotency_key is not None:
            check_idempotency_key(self.idempotency_key)


def encode_body(body: dict[str, Any]) -> bytes:
    """The body as compact UTF-8 JSON; ValueError when it cannot be strict JSON."""
    try:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"DSP request body is not JSON-serializable: {exc}") from exc
    return text.encode("utf-8")


def check_idempotency_key(key: str) -> None:
    """The contract allows 1-255 printable ASCII characters; edge spaces would not survive
    HTTP header parsing, so they are refused too."""
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValueError(
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_LENGTH} characters, got {len(key)}"
        )
    if not all(" " <= char <= "~" for char in key) or key != key.strip():
        raise ValueError(f"Idempotency-Key must be printable ASCII: {key!r}")


def create_request(
    entity_type: EntityType | str, body: dict[str, Any], idempotency_key: str | None = None
) -> DspRequest:
    return DspRequest("POST", collection_path(entity_type), _copy(body), idempotency_key)


def search_request(entity_type: EntityType | str, external_id: str) -> DspRequest:
    """Every entity of the account with this `external_id` (a version-2 DSP; eventually
    consistent)."""
    return DspRequest(
        "GET", f"{collection_path(entity_type)}?external_id={quote(external_id, safe='')}"
    )


def status_request(entity_type: EntityType | str, dsp_id: str) -> DspRequest:
    return DspRequest("GET", f"{_item(entity_type, dsp_id)}/status")


def get_request(entity_type: EntityType | str, dsp_id: str) -> DspRequest:
    return DspRequest("GET", _item(entity_type, dsp_id))


def replace_request(entity_type: EntityType | str, dsp_id: str, body: dict[str, Any]) -> DspRequest:
    return DspRequest("PUT", _item(entity_type, dsp_id), _copy(body))


def archive_request(
    entity_type: EntityType | str, dsp_id: str, note: str | None = None
) -> DspRequest:
    return DspRequest("DELETE", _item(entity_type, dsp_id), note=note)


def _item(entity_type: EntityType | str, dsp_id: str) -> str:
    return f"{collection_path(entity_type)}/{_quote_id(dsp_id)}"


def _quote_id(dsp_id: str) -> str:
    if not isinstance(dsp_id, str) or not dsp_id:
        raise ValueError(f"DSP id must be a non-empty string, got {dsp_id!r}")
    quoted = quote(dsp_id, safe="")
    # URL normalisation would drop "." and ".." segments and hit another resource.
    if quoted in {".", ".."}:
        return quoted.replace(".", "%2E")
    return quoted


def _copy(body: dict[str, Any]) -> dict[str, Any]:
    """A deep copy through JSON, so later changes by the caller cannot alter the request."""
    if not isinstance(body, dict):
        raise ValueError(f"DSP request body must be a JSON object, not {type(body)}")
    copied: dict[str, Any] = json.loads(encode_body(body))
    return copied
