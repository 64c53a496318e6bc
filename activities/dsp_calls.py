"""The activities that talk to the DSP. They run on the rate-limited DSP task queue only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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
from dsp_integration.dsp_client import (
    archive_request,
    create_request,
    parse_created,
    parse_status,
    replace_request,
    status_request,
)
from dsp_integration.gateway.dsp_gateway import DspGateway
from dsp_integration.gateway.heartbeat import auto_heartbeat


class DspActivities:
    def __init__(self, gateway: DspGateway) -> None:
        self._gateway = gateway

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
        """POST the entity. Idempotent: the Idempotency-Key makes every retry of the same
        payload version answer with the first entity instead of creating another."""
        exchange = await self._gateway.call(
            request.key,
            create_request(request.entity_type, request.body, request.idempotency_key),
        )
        dsp_id, dsp_status = parse_created(exchange)
        return SubmitEntityResult(dsp_id=dsp_id, dsp_status=dsp_status)

    @activity.defn
    @auto_heartbeat
    async def find_created_entity(self, request: SubmitEntityInput) -> CreatedEntity:
        """What a POST whose answer was lost created. The same Idempotency-Key and body
        replay the original answer; a request the DSP never took is taken now, so what it
        creates is the key's entity either way. A refusal (422, or 409 reference_not_ready,
        which a replay never answers) means nothing was created."""
        try:
            exchange = await self._gateway.call(
                request.key,
                create_request(request.entity_type, request.body, request.idempotency_key),
            )
        except ApplicationError as err:
            if err.type in (ErrorType.DSP_REJECTED, ErrorType.DSP_REFERENCE_NOT_READY):
                return CreatedEntity()
            raise
        dsp_id, dsp_status = parse_created(exchange)
        return CreatedEntity(dsp_id=dsp_id, dsp_status=dsp_status)

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
        leaves the same result, so retries are harmless."""
        exchange = await self._gateway.call(
            request.key, replace_request(request.entity_type, request.dsp_id, request.body)
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
