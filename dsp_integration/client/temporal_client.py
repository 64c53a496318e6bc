"""Connecting to Temporal the same way from the worker, the starter and the tests."""

from __future__ import annotations

from datetime import timedelta

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from dsp_integration.config import Settings

REACHABILITY_TIMEOUT = timedelta(seconds=5)


class TemporalUnavailable(RuntimeError):
    pass


async def connect_temporal(settings: Settings) -> Client:
    """Connect and prove the namespace answers.

    `Client.connect` succeeds lazily against some half-up servers; describing the namespace
    turns an unreachable server or a missing namespace into one clear error up front.
    """
    try:
        client = await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=pydantic_data_converter,
        )
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=settings.temporal_namespace),
            timeout=REACHABILITY_TIMEOUT,
        )
    except (RuntimeError, RPCError) as err:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {settings.temporal_address} "
            f"(namespace {settings.temporal_namespace!r}): {err}. "
            "Start it with `python dev.py up` or set TEMPORAL_ADDRESS."
        ) from err
    return client
