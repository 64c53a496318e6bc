"""The DSP's HTTP client: build a request, send it once, classify the answer.

The three steps are separate so the caller can take a rate-limit slot and write the audit
row around the raw exchange before deciding whether to retry."""

from dsp_integration.dsp_client.client import DspClient, build_http_client
from dsp_integration.dsp_client.credentials import (
    ClientCredentials,
    CredentialsRefused,
    LoginError,
    LoginFailed,
    LoginThrottled,
    StaticToken,
    TokenSource,
    token_source,
)
from dsp_integration.dsp_client.exchange import MAX_STORED_BODY_BYTES, DspExchange
from dsp_integration.dsp_client.outcome import (
    REFERENCE_NOT_READY,
    DspOutcome,
    DspResponseError,
    ListedEntity,
    OutcomeKind,
    classify,
    parse_created,
    parse_search,
    parse_status,
)
from dsp_integration.dsp_client.requests import (
    DspRequest,
    archive_request,
    create_request,
    get_request,
    replace_request,
    search_request,
    status_request,
)

__all__ = [
    "MAX_STORED_BODY_BYTES",
    "REFERENCE_NOT_READY",
    "ClientCredentials",
    "CredentialsRefused",
    "DspClient",
    "DspExchange",
    "DspOutcome",
    "DspRequest",
    "DspResponseError",
    "ListedEntity",
    "LoginError",
    "LoginFailed",
    "LoginThrottled",
    "OutcomeKind",
    "StaticToken",
    "TokenSource",
    "archive_request",
    "build_http_client",
    "classify",
    "create_request",
    "get_request",
    "parse_created",
    "parse_search",
    "parse_status",
    "replace_request",
    "search_request",
    "status_request",
    "token_source",
]
