"""The OpenAPI document (`/openapi.json`) and `/docs`, the document rendered as a page by
the console itself (Swagger UI would be fetched from a CDN).

FastAPI builds the document from the routes; `openapi_document` adds what it cannot know:
the entity file and payload schemas generated from the field rules, error answers as
`application/problem+json`, and the bearer token. A copy is checked in
(docs/reference/openapi.json, `make openapi`); docs/reference/api-compatibility.md says what
may change in it without a new version."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.responses import Response

from dsp_integration.console.errors import PROBLEM_JSON
from dsp_integration.console.schemas import ERROR_ANSWERS
from dsp_integration.console.templating import render
from dsp_integration.entities import json_schema

router = APIRouter(include_in_schema=False)
METHODS = ("get", "post", "put", "patch", "delete")
BEARER = "bearerAuth"
GATE_STATUSES = (401, 403)
# FastAPI's own 422 shape, which this API never answers (errors.py answers Problem Details).
UNUSED_SCHEMAS = ("HTTPValidationError", "ValidationError")
ENTITY_FILE_EXAMPLE: dict[str, Any] = {
    "batch": "acme-spring-launch",
    "entities": [
        {
            "key": "acme",
            "type": "advertisers",
            "payload": {"name": "Acme", "domain": "acme.example", "currency": "USD"},
        },
        {
            "key": "acme-banner",
            "type": "creatives",
            "payload": {
                "advertiser_id": {"$ref": "acme"},
                "name": "Banner 300x250",
                "format": "display",
                "width": 300,
                "height": 250,
                "click_url": "https://acme.example/spring",
                "asset_url": "https://cdn.acme.example/banner.png",
            },
        },
    ],
}


def openapi_document(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in UNUSED_SCHEMAS:
        schemas.pop(name, None)
    schemas.update(json_schema.schemas())
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "CONSOLE_TOKEN (not needed when the console runs without one, "
            "on loopback only)",
        }
    }
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if not path.startswith("/api/"):
                continue
            operation["security"] = [{BEARER: []}]
            for parameter in operation.get("parameters", []):
                parameter["schema"] = without_null(parameter["schema"])
            problem_details_media_type(operation, example_path(path))
            if (path, method) == ("/api/batches", "post"):
                body = operation["requestBody"]["content"]["application/json"]
                body["example"] = ENTITY_FILE_EXAMPLE
    return document


def without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without FastAPI's `null` for an optional one: a query parameter is
    absent or a value, never null."""
    options = [o for o in schema.get("anyOf", []) if o != {"type": "null"}]
    if "anyOf" not in schema or len(options) != 1:
        return schema
    flat = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**options[0], **flat}


def example_path(path: str) -> str:
    return path.replace("{key}", "acme-banner").replace("{name}", "acme-spring-launch")


def problem_details_media_type(operation: dict[str, Any], instance: str) -> None:
    """Error answers are `application/problem+json` (RFC 9457), not `application/json`,
    each with an example. (Set here: FastAPI drops the examples' nulls.)"""
    for status, response in operation.get("responses", {}).items():
        content = response.get("content", {})
        if int(status) >= 400 and "application/json" in content:
            media = content.pop("application/json")
            example = ERROR_ANSWERS.get(int(status), (None, None))[1]
            if example is not None:
                # The gate's refusals name nothing of what was asked for.
                named = None if int(status) in GATE_STATUSES else instance
                media["example"] = {**example, "instance": named}
            content[PROBLEM_JSON] = media


def install_openapi(app: FastAPI) -> None:
    """`app.openapi()` answers the document above (built once, then copied)."""
    built: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not built:
            built.update(openapi_document(app))
        return copy.deepcopy(built)

    app.openapi = openapi  # type: ignore[method-assign]


def operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per path and method, in the document's order."""
    rows = []
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method not in item:
                continue
            operation = item[method]
            rows.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "parameters": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p.get("required", False),
                            "description": p.get("description", ""),
                        }
                        for p in operation.get("parameters", [])
                    ],
                    "body": sorted(operation.get("requestBody", {}).get("content", {})),
                    "responses": sorted(operation.get("responses", {})),
                }
            )
    return rows


@router.get("/docs")
async def docs(request: Request) -> Response:
    document = request.app.openapi()
    return render(
        request,
        "docs.html",
        {"info": document.get("info", {}), "operations": operations(document)},
    )


PUBLISHED = "docs/reference/openapi.json"


def published_document() -> str:
    """The document as checked in at `PUBLISHED` (`make openapi`): the console's, whatever
    the environment configures."""
    from dsp_integration.config import Settings
    from dsp_integration.console.app import create_app

    app = create_app(Settings(_env_file=None))
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`make openapi`: write the document to PATH (the checked-in copy by default)."""
    target = Path((argv if argv is not None else sys.argv[1:] or [PUBLISHED])[0])
    target.write_text(published_document(), encoding="utf-8")
    print(f"wrote {target}")
    return 0
