"""The checked-in copy of the API's document (docs/reference/openapi.json) is the one the
console serves: a change to the API cannot go unnoticed by review, and the compatibility
policy's step is taken before the copy is renewed."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from dsp_integration.console.apidocs import PUBLISHED, published_document

ROOT = Path(__file__).resolve().parents[3]
POLICY = "docs/reference/api-compatibility.md"


def test_the_checked_in_document_is_the_served_one() -> None:
    checked_in = (ROOT / PUBLISHED).read_text(encoding="utf-8")
    served = published_document()
    if checked_in == served:
        return
    diff = "".join(
        list(
            difflib.unified_diff(
                checked_in.splitlines(keepends=True),
                served.splitlines(keepends=True),
                PUBLISHED,
                "served by the console",
                n=2,
            )
        )[:80]
    )
    raise AssertionError(
        f"The HTTP API's document changed. Follow {POLICY}, section 'Changing the API': "
        "decide whether the change is compatible (step 1); a breaking change goes into a "
        "new version, never into this one (step 2); then run `make openapi` and commit "
        f"{PUBLISHED} with the change (step 3).\n{diff}"
    )


def test_the_document_names_its_policy_and_every_error_is_problem_details() -> None:
    document = json.loads(published_document())
    assert POLICY in document["info"]["description"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if path.startswith("/api/") and int(status) >= 400:
                    media = response["content"]["application/problem+json"]
                    assert media["schema"] == {"$ref": "#/components/schemas/ProblemDetails"}
                    assert media["example"]["status"] == int(status), (path, method, status)
            if path.startswith("/api/"):
                assert {"401", "403", "500", "503"} <= set(operation["responses"]), path


def test_the_disagreements_of_issue_26_are_in_the_document() -> None:
    """What Schemathesis found valid by the document and refused by the service."""
    document = json.loads(published_document())
    schemas = document["components"]["schemas"]
    paths = document["paths"]
    weight = next(p for p in paths["/api/batches"]["post"]["parameters"] if p["name"] == "weight")
    assert (weight["schema"]["minimum"], weight["schema"]["maximum"]) == (0.001, 1000)
    body = schemas["PrioritiseBody"]
    assert body["minProperties"] == 1 and body["additionalProperties"] is False
    assert body["properties"]["fairness_weight"]["minimum"] == 0.001
    payloads = schemas["ResubmitBody"]["properties"]["payload"]["anyOf"]
    for option in payloads[:-1]:
        payload = schemas[option["$ref"].rsplit("/", 1)[1]]
        assert payload["required"] and payload["additionalProperties"] is False
    for path, method in (
        ("/api/batches/{name}/priority", "post"),
        ("/api/entities/{key}/resubmit", "post"),
    ):
        assert "400" in paths[path][method]["responses"]
