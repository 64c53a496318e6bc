"""How the entity workflow calls its activities: timeouts, heartbeats, retries, limits."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from dsp_integration.contracts import ErrorType

# Polls per run before continue-as-new keeps the history of a days-long review bounded.
MAX_POLLS_PER_RUN = 100

RECORD_TIMEOUT = timedelta(seconds=30)
RECORD_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[ErrorType.UNKNOWN_ENTITY],
)
DSP_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    non_retryable_error_types=[ErrorType.DSP_REJECTED, ErrorType.DSP_NOT_FOUND],
)
# DSP calls may wait for a slot of the shared budget; heartbeats notice a dead worker early
# and carry a cancellation to a call that is waiting for its slot.
DSP_START_TO_CLOSE = timedelta(minutes=10)
DSP_HEARTBEAT = timedelta(seconds=30)
REFUSALS = (ErrorType.DSP_REJECTED, ErrorType.DSP_NOT_FOUND)
# Telling 10,000 dependants takes minutes; the heartbeat after each page is what matters.
FAN_OUT_START_TO_CLOSE = timedelta(hours=1)
FAN_OUT_HEARTBEAT = timedelta(seconds=30)
FAN_OUT_RETRY_POLICY = RetryPolicy(maximum_interval=timedelta(seconds=30))
# Up to this many dependants are told inside the ending's local activity; more in a
# regular, heartbeating activity that resumes where it stopped.
LOCAL_FAN_OUT_LIMIT = 50
