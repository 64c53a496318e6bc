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
