"""The Jinja2 environment: autoescaping on for every template, a few display filters."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
STATUS_ORDER = ["waiting", "submitting", "polling", "succeeded", "rejected", "failed",
                "cancelled", "blocked"]  # fmt: skip


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _time_tag(value: datetime | str | None, millis: bool = False) -> Markup:
    """A `<time>` with the absolute UTC time as text; console.js shows it in the viewer's
    time zone and keeps the UTC time as the tooltip (without script: the UTC time).
    `millis`: to the millisecond (the audit trail's requests)."""
    if not value:
        return Markup("")
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    shown = (
        moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if millis else f"{moment:%Y-%m-%d %H:%M:%S}"
    )
    text = f"{shown} UTC"
    return Markup('<time datetime="{}" title="{}"{}>{}</time>').format(
        moment.isoformat(), text, Markup(" data-millis") if millis else "", text
    )


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def _duration(started: datetime | None, finished: datetime | None) -> str:
    if started is None or finished is None:
        return ""
    return f"{(finished - started).total_seconds() * 1000:.0f} ms"


def build_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATE_DIR))
    env = templates.env
    env.autoescape = True  # every template, whatever its name: data is always text
    env.filters["when"] = _when
    env.filters["pretty"] = _pretty
    env.filters["time_tag"] = _time_tag
    env.globals["duration"] = _duration
    env.globals["STATUS_ORDER"] = STATUS_ORDER
    return templates


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    values = {"csrf": getattr(request.state, "csrf", ""), **(context or {})}
    # Who is looking (client.actors.Actor; None on the login page): templates show actions
    # only to a role that may take them, e.g. `{% if actor.role.may("operator") %}`.
    values["actor"] = getattr(request.state, "actor", None)
    values["auth_required"] = getattr(request.state, "logged_in", False)
    return templates.TemplateResponse(request, name, values, status_code=status_code)
