"""Prometheus metrics of a worker process, on one endpoint.

The Temporal SDK's Prometheus exporter (in its Rust core) serves `METRICS_PORT`; the
service's own metrics go through the same runtime's metric meter, so one scrape returns
the SDK's metrics (`temporal_*`) and the service's (`dsp_*`). prometheus-client's own HTTP
server would need a second port, and mirroring one registry into the other would need a
scraper in the worker.

Activities record through `activity.metric_meter()`, the worker's gauges through
`runtime.metric_meter`; both are no-ops when the runtime has no metrics configured."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from datetime import datetime

from temporalio import activity
from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from dsp_integration.config.seats import Seat
from dsp_integration.contracts import DEFAULT_SEAT, EntityStatus, EntityType
from dsp_integration.database import queue_store, rate_ledger
from dsp_integration.database.engine import SessionFactory
from dsp_integration.observability.attention import read_attention

logger = logging.getLogger(__name__)

DSP_REQUESTS = "dsp_requests"
DSP_RATE_LIMITED = "dsp_rate_limited"
DSP_BUDGET_USED = "dsp_budget_used_ratio"
DSP_REQUESTS_IN_WINDOW = "dsp_requests_in_window"
DSP_CALLS_WAITING = "dsp_calls_waiting_for_slot"
DSP_ENTITIES = "dsp_entities"
DSP_TIME_TO_TERMINAL = "dsp_entity_time_to_terminal_seconds"
DSP_UNKNOWN_STATUS = "dsp_entities_unknown_dsp_status"
DSP_OLDEST_REVIEW = "dsp_entity_oldest_review_seconds"
COLLECT_SECONDS = 5.0
# Seconds: from advertisers done in a second to creatives reviewed over days.
TIME_TO_TERMINAL_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 86400, 4 * 86400]

_ID_SEGMENT = re.compile(r"^(/v1/[^/]+)/[^/]+")


def install_runtime(port: int | None, host: str = "0.0.0.0") -> Runtime | None:
    """With a port, make a runtime exporting Prometheus metrics on it the default runtime,
    so the clients connected after this (the worker's) report through it."""
    if port is None:
        return None
    prometheus = PrometheusConfig(
        bind_address=f"{host}:{port}",
        histogram_bucket_overrides={DSP_TIME_TO_TERMINAL: TIME_TO_TERMINAL_BUCKETS},
    )
    try:
        runtime = Runtime(telemetry=TelemetryConfig(metrics=prometheus))
    except ValueError as error:  # the core reports a port in use this way
        raise OSError(f"cannot serve metrics on METRICS_PORT={port}: {error}") from error
    Runtime.set_default(runtime, error_if_already_set=False)
    logger.info("Prometheus metrics on http://%s:%d/metrics", host, port)
    return runtime


def endpoint_of(method: str, path: str) -> str:
    """`GET /v1/creatives/cre_8f3/status` -> `GET /v1/creatives/{id}/status`: one series per
    endpoint, not per entity."""
    template = _ID_SEGMENT.sub(r"\1/{id}", path)
    return f"{method} {template}"


def _activity_meter() -> MetricMeter:
    return activity.metric_meter() if activity.in_activity() else MetricMeter.noop


def count_dsp_request(
    method: str, path: str, status_code: int | None, seat: str = DEFAULT_SEAT
) -> None:
    """One request of `seat` that reached (or tried to reach) the DSP; status `none` when no
    answer."""
    meter = _activity_meter()
    endpoint = endpoint_of(method, path)
    attributes = {
        "endpoint": endpoint,
        "status": str(status_code) if status_code is not None else "none",
        "seat": seat,
    }
    meter.create_counter(DSP_REQUESTS, "DSP requests by endpoint, status and seat").add(
        1, attributes
    )
    if status_code == 429:
        meter.create_counter(DSP_RATE_LIMITED, "DSP answers 429 rate_limited").add(
            1, {"endpoint": endpoint, "seat": seat}
        )


def observe_entity_finished(
    entity_type: str, status: str, submitted_at: datetime, finished_at: datetime
) -> None:
    """Time from the submit that stored the entity to its terminal status."""
    seconds = max(0.0, (finished_at - submitted_at).total_seconds())
    _activity_meter().create_histogram_float(
        DSP_TIME_TO_TERMINAL, "Seconds from submit to a terminal status", "s"
    ).record(seconds, {"entity_type": entity_type, "status": status})


class WorkerGauges:
    """Gauges read from PostgreSQL every `interval` seconds: entities by status and, for every
    seat (label `seat`), the share of its budget used in the current window, its requests in
    the window and its calls waiting in the workers for a slot; per entity type, open
    entities with a DSP status the contract does not name and the age of the oldest review
    (`attention.py`). Every worker reports the same
    values (they are facts of the shared database): aggregate them with max, not sum."""

    def __init__(
        self,
        meter: MetricMeter,
        sessions: SessionFactory,
        *,
        seats: Iterable[Seat],
        interval: float = COLLECT_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._seats = list(seats)
        self._interval = interval
        self._entities = meter.create_gauge(DSP_ENTITIES, "Entities by service status")
        self._budget = meter.create_gauge_float(
            DSP_BUDGET_USED, "A seat's DSP requests in the current window / its rate limit"
        )
        self._in_window = meter.create_gauge(
            DSP_REQUESTS_IN_WINDOW, "A seat's DSP requests counted in the current window"
        )
        self._waiting = meter.create_gauge(
            DSP_CALLS_WAITING, "A seat's DSP calls held by workers, waiting for a slot"
        )
        self._unknown = meter.create_gauge(
            DSP_UNKNOWN_STATUS, "Open entities whose DSP status the contract does not name"
        )
        self._oldest_review = meter.create_gauge_float(
            DSP_OLDEST_REVIEW, "Seconds since the oldest entity under review was submitted"
        )

    async def collect(self) -> None:
        async with self._sessions() as session:
            counts = await queue_store.count_by_status(session)
            by_seat = await rate_ledger.seat_windows(
                session, {seat.name: seat.rate_window for seat in self._seats}
            )
            windows = [by_seat[seat.name] for seat in self._seats]
            attention = await read_attention(session)
        for status in EntityStatus:
            self._entities.set(counts.get(status.value, 0), {"status": status.value})
        for seat, window in zip(self._seats, windows, strict=True):
            labels = {"seat": seat.name}
            self._budget.set(window.in_window / seat.rate_limit, labels)
            self._in_window.set(window.in_window, labels)
            self._waiting.set(window.waiting, labels)
        for kind in EntityType:
            labels = {"entity_type": kind.value}
            self._unknown.set(attention.unknown_dsp_status.get(kind.value, 0), labels)
            self._oldest_review.set(attention.oldest_review_seconds.get(kind.value, 0.0), labels)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.collect()
            except Exception:  # a database hiccup must not stop the worker
                logger.warning("collecting metrics failed", exc_info=True)
            try:
                await asyncio.wait_for(stop.wait(), self._interval)
            except TimeoutError:
                pass


def client_meter(client: Client) -> MetricMeter:
    """The metric meter of the runtime the client (and its workers) report through."""
    return (client.service_client.config.runtime or Runtime.default()).metric_meter
