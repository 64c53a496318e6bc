"""Logs: readable on a terminal, one JSON object per line otherwise."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from temporalio import activity, workflow

from dsp_integration.contracts.names import WORKFLOW_ID_PREFIX

# Attributes Temporal's workflow/activity loggers attach (`temporal_workflow`, `temporal_activity`).
_CONTEXT_FIELDS = {
    "temporal_workflow": ("workflow_id", "workflow_type", "run_id", "attempt"),
    "temporal_activity": ("workflow_id", "activity_type", "activity_id", "attempt"),
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for attribute, fields in _CONTEXT_FIELDS.items():
            details = getattr(record, attribute, None)
            if isinstance(details, dict):
                entry.update({f: details[f] for f in fields if f in details})
        workflow_id = entry.get("workflow_id")
        if isinstance(workflow_id, str) and workflow_id.startswith(WORKFLOW_ID_PREFIX):
            entry["entity_key"] = workflow_id.removeprefix(WORKFLOW_ID_PREFIX)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
        # The JSON fields carry the workflow and activity details; keep them off the message.
        activity.logger.activity_info_on_message = False
        workflow.logger.workflow_info_on_message = False
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)
