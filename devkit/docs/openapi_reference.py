"""The HTTP API reference, rendered from the OpenAPI document the console's FastAPI app
produces (what `/openapi.json` serves), at build time and without a network."""

from __future__ import annotations

import json
from typing import Any

from dsp_integration.config import Settings
from dsp_integration.console.app import create_app

METHODS = ("get", "post", "put", "patch", "delete")
REF_PREFIX = "#/components/schemas/"
BOUNDS = {
    "minimum": "≥",
    "exclusiveMinimum": ">",
    "maximum": "≤",
    "exclusiveMaximum": "<",
    "minLength": "length ≥",
    "maxLength": "length ≤",
    "minItems": "items ≥",
    "maxItems": "items ≤",
    "pattern": "pattern",
}


def openapi_document() -> dict[str, Any]:
    """The document the console serves at `/openapi.json` (no database or Temporal needed:
    the app's lifespan is not run)."""
    return create_app(Settings(_env_file=None)).openapi()


def _anchor(name: str) -> str:
    return f"schema-{name.lower()}"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def schema_text(schema: dict[str, Any]) -> str:
    """A short, linked description of a schema: `string`, `array of [X](#schema-x)`, ..."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(REF_PREFIX)
        return f"[{name}](#{_anchor(name)})"
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema.get("oneOf") or []
        return " or ".join(schema_text(option) for option in options)
    if "allOf" in schema:
        return " and ".join(schema_text(option) for option in schema["allOf"])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array":
        return f"array of {schema_text(schema.get('items', {}))}"
    if "enum" in schema:
        return f"{kind}: " + ", ".join(f"`{json.dumps(value)}`" for value in schema["enum"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    return str(kind)


def _constraints(schema: dict[str, Any]) -> str:
    parts = []
    for option in [schema, *schema.get("anyOf", [])]:
        for key, sign in BOUNDS.items():
            if key in option:
                value = f"`{option[key]}`" if key == "pattern" else option[key]
                parts.append(f"{sign} {value}")
    if "default" in schema:
        parts.append(f"default `{json.dumps(schema['default'])}`")
    return ", ".join(parts)


def _parameters(operation: dict[str, Any]) -> list[str]:
    parameters = operation.get("parameters", [])
    if not parameters:
        return []
    rows = [
        "| parameter | in | required | type | constraints | meaning |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for parameter in parameters:
        schema = parameter.get("schema", {})
        rows.append(
            f"| `{parameter['name']}` | {parameter['in']} | "
            f"{'yes' if parameter.get('required') else 'no'} | {_cell(schema_text(schema))} | "
            f"{_cell(_constraints(schema))} | "
            f"{_cell(parameter.get('description', schema.get('description', '')))} |"
        )
    return ["", *rows]


def _body(operation: dict[str, Any]) -> list[str]:
    body = operation.get("requestBody")
    if not body:
        return []
    lines = ["", f"Request body ({'required' if body.get('required') else 'optional'}):", ""]
    for media, content in body.get("content", {}).items():
        lines.append(f"- `{media}`: {schema_text(content.get('schema', {}))}")
    return lines


def _responses(operation: dict[str, Any]) -> list[str]:
    rows = ["", "| status | meaning | body |", "| --- | --- | --- |"]
    for status, response in operation.get("responses", {}).items():
        bodies = [
            f"`{media}` {schema_text(content.get('schema', {}))}"
            for media, content in response.get("content", {}).items()
        ]
        rows.append(
            f"| {status} | {_cell(response.get('description', ''))} | {_cell('; '.join(bodies))} |"
        )
    return rows


def render_operations(document: dict[str, Any]) -> str:
    lines: list[str] = []
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            lines += ["", f"### `{method.upper()} {path}`", ""]
            if operation.get("summary"):
                lines.append(f"**{operation['summary']}.**")
            if operation.get("description"):
                lines += ["", operation["description"].strip()]
            lines += _parameters(operation) + _body(operation) + _responses(operation)
    return "\n".join(lines).strip()


def render_schemas(document: dict[str, Any]) -> str:
    lines: list[str] = []
    schemas = document.get("components", {}).get("schemas", {})
    for name, schema in sorted(schemas.items()):
        lines += ["", f"### {name} {{#{_anchor(name)}}}", ""]
        if schema.get("description"):
            lines += [_cell(schema["description"]), ""]
        properties = schema.get("properties")
        if not properties:
            lines.append(f"{schema_text(schema)}")
            continue
        required = set(schema.get("required", []))
        lines += [
            "| field | type | required | constraints | meaning |",
            "| --- | --- | --- | --- | --- |",
        ]
        for field, field_schema in properties.items():
            lines.append(
                f"| `{field}` | {_cell(schema_text(field_schema))} | "
                f"{'yes' if field in required else 'no'} | {_cell(_constraints(field_schema))} | "
                f"{_cell(field_schema.get('description', ''))} |"
            )
    return "\n".join(lines).strip()


def render() -> str:
    document = openapi_document()
    info = document.get("info", {})
    return "\n\n".join(
        [
            f"OpenAPI {document.get('openapi')}, *{info.get('title')}* version "
            f"{info.get('version')}.",
            "## Operations",
            render_operations(document),
            "## Schemas",
            render_schemas(document),
        ]
    )
