"""The configuration reference, rendered from the settings models themselves, so a setting
added, renamed or re-defaulted in code is what the page says."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

from dsp_integration.config import Settings
from dsp_integration.config.seat_config import SeatConfig
from dsp_integration.worker.runtime import WorkerTuning


class UndescribedSetting(ValueError):
    """A settings field without a description: the reference would have a hole."""


def _env_name(model: type[BaseModel], name: str) -> str:
    prefix = str(model.model_config.get("env_prefix") or "")  # type: ignore[attr-defined]
    return f"{prefix}{name}".upper()


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    return f"`{json.dumps(to_jsonable_python(value))}`"


def _type(field: FieldInfo) -> str:
    text = str(field.annotation).replace("typing.", "").replace("pydantic.types.", "")
    text = text.replace("<class '", "").replace("'>", "")
    text = text.replace("dsp_integration.config.seat_config.", "")
    return " or ".join(f"`{part}`" for part in text.split(" | "))  # a | would split the cell


def _bounds(field: FieldInfo) -> str:
    names = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "length ≥"}
    parts = []
    for item in field.metadata:
        for attribute, sign in names.items():
            value = getattr(item, attribute, None)
            if value is not None:
                parts.append(f"{sign} {value}")
    return ", ".join(parts)


def fields_table(model: type[BaseModel], *, env: bool = True) -> str:
    """One row per field: its name (the environment variable), type, default, bounds and
    description. Raises `UndescribedSetting` for a field without a description."""
    header = (
        "| variable | type | default | bounds | meaning |"
        if env
        else ("| field | type | default | bounds | meaning |")
    )
    rows = [header, "| --- | --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        if not field.description:
            raise UndescribedSetting(f"{model.__name__}.{name} has no description")
        label = _env_name(model, name) if env else name
        description = field.description.replace("|", "\\|").replace("\n", " ")
        rows.append(
            f"| `{label}` | {_type(field)} | {_default(field)} | {_bounds(field)} | {description} |"
        )
    return "\n".join(rows)


def render() -> str:
    return "\n\n".join(
        [
            "### Service settings (`Settings`)",
            "Read by every process from the environment or a `.env` file "
            "(`dsp_integration/config/settings.py`).",
            fields_table(Settings),
            "### Seats (`DSP_SEATS` entries)",
            "Each entry of the JSON list `DSP_SEATS` (`SeatConfig`); no secret goes in it.",
            fields_table(SeatConfig, env=False),
            "### Worker tuning (`WorkerTuning`)",
            "How a worker process runs, not what the service does "
            "(`dsp_integration/worker/runtime.py`).",
            fields_table(WorkerTuning),
        ]
    )
