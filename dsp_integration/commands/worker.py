"""`worker.py`: run one worker process until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

import pydantic

from dsp_integration.client.temporal_client import TemporalUnavailable
from dsp_integration.config import Settings
from dsp_integration.config.seats import SeatProblems
from dsp_integration.worker.logging_setup import configure_logging
from dsp_integration.worker.runtime import WorkerTuning, event_loop_factory, run_worker

logger = logging.getLogger("worker")


async def _serve(settings: Settings, tuning: WorkerTuning) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await run_worker(settings, stop, tuning=tuning)


def main() -> int:
    configure_logging()
    try:
        settings = Settings()
        tuning = WorkerTuning()
        settings.seats()  # every seat's secret and budget: refuse now, not at the first call
    except pydantic.ValidationError as error:
        logger.error("bad configuration: %s", error.errors()[0]["msg"])
        return 2
    except SeatProblems as problems:
        for problem in problems.problems:
            logger.error("bad configuration: %s", problem)
        return 2
    try:
        with asyncio.Runner(loop_factory=event_loop_factory(tuning)) as runner:
            runner.run(_serve(settings, tuning))
    except TemporalUnavailable as error:
        logger.error("%s", error)
        return 3
    except OSError as error:
        logger.error("cannot start the worker: %s", error)
        return 3
    return 0
