"""The activities that talk to the DSP. They run on the rate-limited DSP task queue only.

At a version-2 DSP (`dsp-api-v2.md`: no idempotency keys, an eventually consistent search)
every create carries the entity's key as its `external_id`; a create that may have reached
the DSP is never sent again blindly: it fails `DspMayHaveLanded`, and the workflow finds out
what it created (`find_created_entity`) through the search, once the search's lag since
that attempt has passed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from dsp_integration.contracts import (
    ArchiveEntityInput,
    CreatedEntity,
    DspStatusResult,
    ErrorType,
    PollStatusInput,
    ReplaceEntityInput,
    SubmitEntityInput,
    SubmitEntityResult,
)
from dsp_integration.contracts.entity_types import ARCHIVED
from dsp_integration.database import audit_log
from dsp_integration.database.engine import SessionFactory, autocommit_session
from dsp_integration.dsp_client import (
    DspRequest,
    ListedEntity,
    archive_request,
    create_request,
    parse_created,
    parse_search,
    parse_status,
    replace_request,
    search_request,
    status_request,
)
from dsp_integration.gateway.dsp_gateway import DspGateway, sent_nothing
from dsp_integration.gateway.heartbeat import auto_heartbeat

EXTERNAL_ID = "external_id"


@dataclass(frozen=True)
class DspContract:
    """Which contract the DSP speaks, and (version 2) how long its search may lag."""

    version: int = 1  # 1 or 2 (Settings.dsp_api_version)
    search_lag: float = 10.0
    request_timeout: float = 10.0  # Settings.dsp_timeout: how late an unanswered POST can land


class DspActivities:
    def __init__(
        self,
        gateway: DspGateway,
        sessions: SessionFactory,
        contract: DspContract = DspContract(),
    ) -> None:
        self._gateway = gateway
        self._sessions = sessions
        self._contract = contract

    def all(self) -> list[Callable[..., Awaitable[Any]]]:
        """Every DSP activity, as the DSP worker registers them."""
        return [
            self.submit_entity,
            self.find_created_entity,
            self.poll_status,
            self.replace_entity,
            self.archive_entity,
        ]

    @activity.defn
    @auto_heartbeat
    async def submit_entity(self, request: SubmitEntityInput) -> SubmitEntityResult:
        """POST the entity. Version 1: the Idempotency-Key makes every retry answer with the
        first entity. Version 2: a retry of an attempt that may have landed (a worker that
        died between send and record) sends nothing, and a fault after the request may have
        reached the DSP is not retried: both fail `DspMayHaveLanded` (not a failed login:
        nothing was sent, nor a `401 token_expired`: the DSP did nothing)."""
        if self._versioned_keys:
            exchange = await self._gateway.call(request.key, self._create(request))
        else:
            if activity.info().attempt > 1 and await self._may_have_landed(request):
                raise _may_have_landed(request, "an earlier attempt")
            try:
                exchange = await self._gateway.call(request.key, self._create(request))
            except ApplicationError as err:
                if err.type == ErrorType.DSP_TRANSIENT and not sent_nothing(err):
                    raise _may_have_landed(request, err.message) from err
                raise
        dsp_id, dsp_status = parse_created(exchange)
        return SubmitEntityResult(dsp_id=dsp_id, dsp_status=dsp_status)

    @activity.defn
    @auto_heartbeat
    async def find_created_entity(self, request: SubmitEntityInput) -> CreatedEntity:
        """What a POST whose answer was lost created. Version 1: the same Idempotency-Key and
        body replay the original answer; a request the DSP never took is taken now, so what
        it creates is the key's entity either way; a refusal (422, or 409
        reference_not_ready, which a replay never answers) means nothing was created.
        Version 2: the search by the key's `external_id`, once its lag since the attempt has
        passed (until then this fails `DspSearchLag`, retried when it has); of several live
        entities the oldest is kept and the others archived, the audit row saying why."""
        if self._versioned_keys:
            return await self._replay(request)
        return await self._search(request)

    @activity.defn
    @auto_heartbeat
    async def poll_status(self, request: PollStatusInput) -> DspStatusResult:
        """GET the entity's status; read-only, so retries are harmless."""
        exchange = await self._gateway.call(
            request.key, status_request(request.entity_type, request.dsp_id)
        )
        dsp_status, reason = parse_status(exchange)
        return DspStatusResult(dsp_status=dsp_status, reason=reason)

    @activity.defn
    @auto_heartbeat
    async def replace_entity(self, request: ReplaceEntityInput) -> DspStatusResult:
        """PUT a new payload on an existing DSP entity; replacing with the same body twice
        leaves the same result, so retries are harmless. Version 2 keeps the reference."""
        body = self._with_reference(request.key, request.body)
        exchange = await self._gateway.call(
            request.key, replace_request(request.entity_type, request.dsp_id, body)
        )
        dsp_status, reason = parse_status(exchange)
        return DspStatusResult(dsp_status=dsp_status, reason=reason)

    @activity.defn
    @auto_heartbeat
    async def archive_entity(self, request: ArchiveEntityInput) -> DspStatusResult:
        """DELETE (archive) at the DSP; archiving twice answers 200 again."""
        exchange = await self._gateway.call(
            request.key, archive_request(request.entity_type, request.dsp_id)
        )
        dsp_status, reason = parse_status(exchange)
        return DspStatusResult(dsp_status=dsp_status, reason=reason)

    @property
    def _versioned_keys(self) -> bool:
        return self._contract.version == 1

    def _create(self, request: SubmitEntityInput) -> DspRequest:
        body = self._with_reference(request.key, request.body)
        return create_request(request.entity_type, body, request.idempotency_key)

    def _with_reference(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        """Version 2: the body with the key as the client's reference."""
        if self._versioned_keys:
            return body
        return {**body, EXTERNAL_ID: key}

    async def _may_have_landed(self, request: SubmitEntityInput) -> bool:
        async with autocommit_session(self._sessions) as session:
            return await audit_log.request_may_have_landed(
                session, request.key, request.idempotency_key
            )

    async def _replay(self, request: SubmitEntityInput) -> CreatedEntity:
        try:
            exchange = await self._gateway.call(request.key, self._create(request))
        except ApplicationError as err:
            if err.type in (ErrorType.DSP_REJECTED, ErrorType.DSP_REFERENCE_NOT_READY):
                return CreatedEntity()
            raise
        dsp_id, dsp_status = parse_created(exchange)
        return CreatedEntity(dsp_id=dsp_id, dsp_status=dsp_status, holds_attempt=True)

    async def _search(self, request: SubmitEntityInput) -> CreatedEntity:
        async with autocommit_session(self._sessions) as session:
            age = await audit_log.seconds_since_last_landing_attempt(
                session,
                request.key,
                request.idempotency_key,
                request_timeout=self._contract.request_timeout,
            )
        if age is not None:
            left = self._contract.search_lag - float(age)
            if left > 0:
                raise ApplicationError(
                    f"waiting {left:.1f} s more for the DSP's search to show what the POST "
                    "sent then created",
                    type=ErrorType.DSP_SEARCH_LAG,
                    next_retry_delay=timedelta(seconds=left),
                )
        exchange = await self._gateway.call(
            request.key, search_request(request.entity_type, request.key)
        )
        live = [
            item
            for item in parse_search(exchange)
            if item.status != ARCHIVED and item.fields.get(EXTERNAL_ID) == request.key
        ]
        if not live:
            return CreatedEntity()
        kept, *duplicates = sorted(live, key=_created_at)
        for duplicate in duplicates:
            note = (
                f"duplicate of {kept.dsp_id} for key {request.key!r} (external_id search): "
                f"one live entity per key is kept"
            )
            activity.logger.warning("archiving %s: %s", duplicate.dsp_id, note)
            await self._gateway.call(
                request.key, archive_request(request.entity_type, duplicate.dsp_id, note)
            )
        return CreatedEntity(
            dsp_id=kept.dsp_id,
            dsp_status=kept.status,
            holds_attempt=_holds(kept, self._with_reference(request.key, request.body)),
            duplicates_archived=[d.dsp_id for d in duplicates],
        )


def _may_have_landed(request: SubmitEntityInput, why: str) -> ApplicationError:
    return ApplicationError(
        f"POST of {request.key!r} may have created it ({why}): found out, not sent again",
        type=ErrorType.DSP_MAY_HAVE_LANDED,
        non_retryable=True,
    )


def _created_at(item: ListedEntity) -> str:
    """The DSP's creation time as it wrote it (ISO 8601 sorts as text), then the id."""
    return f"{item.fields.get('created_at') or ''}|{item.dsp_id}"


def _holds(item: ListedEntity, body: dict[str, Any]) -> bool:
    """Whether the listed entity holds every field of `body`."""
    return all(item.fields.get(field) == value for field, value in body.items())
