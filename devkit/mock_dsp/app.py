"""The mock DSP as a Starlette app; its state is `app.state.dsp`."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount, Route

from devkit.mock_dsp.admin import ADMIN_ROUTES
from devkit.mock_dsp.api import API_METHODS, api_endpoint
from devkit.mock_dsp.config import MockDspConfig
from devkit.mock_dsp.oauth import TOKEN_PATH, token_endpoint
from devkit.mock_dsp.state import MockDsp, RequestListener, TokenRequestListener


def create_app(
    config: MockDspConfig | None = None,
    *,
    on_request: RequestListener | None = None,
    on_token_request: TokenRequestListener | None = None,
) -> Starlette:
    """`on_request` is called with each API request's log record once its answer is decided,
    `on_token_request` with each token request's."""
    app = Starlette(
        routes=[
            Mount("/_mock", routes=ADMIN_ROUTES),
            Route(TOKEN_PATH, token_endpoint, methods=API_METHODS),
            Route("/{path:path}", api_endpoint, methods=API_METHODS),
        ]
    )
    app.state.dsp = MockDsp(config, on_request=on_request, on_token_request=on_token_request)
    return app
