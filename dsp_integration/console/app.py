"""The console's ASGI application: routes, the access gate, templates and static files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import Response

from dsp_integration.client.context import ServiceContext, open_service
from dsp_integration.client.logins import SessionPolicy
from dsp_integration.config import Settings
from dsp_integration.console import account_pages, activity, api, apidocs, login, pages
from dsp_integration.console.access import Handler, gate
from dsp_integration.console.auth import Guard
from dsp_integration.console.errors import install_error_handlers
from dsp_integration.console.templating import STATIC_DIR, build_templates

SECURITY_HEADERS = {
    # Defence in depth: pages load only their own script and style, nothing inline.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def console_token(settings: Settings) -> str | None:
    token = settings.console_token.get_secret_value() if settings.console_token else ""
    return token or None


def session_policy(settings: Settings) -> SessionPolicy:
    return SessionPolicy(
        idle=timedelta(minutes=settings.console_session_idle_minutes),
        lifetime=timedelta(hours=settings.console_session_hours),
    )


def create_app(settings: Settings, *, service: ServiceContext | None = None) -> FastAPI:
    """The console for `settings`; `service` (tests) replaces the one it would open."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service is not None:
            app.state.service = service
            yield
            return
        async with open_service(settings) as opened:
            app.state.service = opened
            yield

    app = FastAPI(
        title="DSP integration service",
        version="1",
        description="Submit entity files, follow entities, cancel and resubmit them. Errors "
        "are Problem Details (RFC 9457). What may change without a new version: "
        "docs/reference/api-compatibility.md.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.guard = Guard(console_token(settings), session_policy(settings))
    app.state.templates = build_templates()

    @app.middleware("http")
    async def _gate(request: Request, call_next: Handler) -> Response:
        response = await gate(request, call_next)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    install_error_handlers(app)
    apidocs.install_openapi(app)
    app.include_router(api.router)
    app.include_router(activity.api_router)
    app.include_router(api.health_router)
    app.include_router(login.router)
    app.include_router(account_pages.router)
    app.include_router(apidocs.router)
    app.include_router(pages.router)
    app.include_router(activity.page_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
