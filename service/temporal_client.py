"""Connecting to Temporal the same way from the worker, the starter and the tests."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from config import Settings


class TemporalUnavailable(RuntimeError):
    pass


async def connect_temporal(settings: Settings) -> Client:
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=pydantic_data_converter,
        )
    except RuntimeError as err:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {settings.temporal_address} "
            f"(namespace {settings.temporal_namespace!r}): {err}. "
            "Start it with `python dev.py up` or set TEMPORAL_ADDRESS."
        ) from err
