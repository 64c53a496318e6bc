"""Who is asking, for the console's pages and the API: the one place a request becomes an
`Actor`, the name the action log and the workflow's signal carry."""

from __future__ import annotations

from starlette.requests import Request

from dsp_integration.client.actors import Actor, Role

ANONYMOUS = "anonymous"


def actor_of(request: Request) -> Actor:
    """The actor the access gate set on the request (`request.state.actor`); without one (a
    console with no accounts yet), an anonymous admin at the client's address."""
    actor = getattr(request.state, "actor", None)
    if isinstance(actor, Actor):
        return actor
    return Actor(
        name=ANONYMOUS,
        role=Role.ADMIN,
        via="api" if request.url.path.startswith("/api/") else "console",
        address=request.client.host if request.client else None,
    )
