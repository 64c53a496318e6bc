"""`/docs`: the OpenAPI document rendered as a page by the console itself (Swagger UI would
be fetched from a CDN); the machine-readable document is at `/openapi.json`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from dsp_integration.console.templating import render

router = APIRouter(include_in_schema=False)
METHODS = ("get", "post", "put", "patch", "delete")


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
