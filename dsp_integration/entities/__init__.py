"""Entity files: parsing, the DSP's field rules, references and the dependency graph.

`refs` is standard-library only: the entity workflow imports it in the sandbox."""

from dsp_integration.entities.graph import find_cycles, topological_order
from dsp_integration.entities.model import (
    EntitySpec,
    ExistingEntity,
    Problem,
    Submission,
    SubmissionRefused,
)
from dsp_integration.entities.parser import (
    MAX_ENTITIES,
    MAX_FILE_BYTES,
    default_batch_name,
    parse_submission,
)
from dsp_integration.entities.refs import (
    UnresolvedReference,
    dependencies_of,
    payload_fingerprint,
    referenced_keys,
    resolve_refs,
)
from dsp_integration.entities.seats import ONLY_DEFAULT_SEAT, SeatChoice, seat_problem
from dsp_integration.entities.validate import (
    check_submission,
    keys_to_look_up,
    validate_payload,
    validate_submission,
)

__all__ = [
    "MAX_ENTITIES",
    "MAX_FILE_BYTES",
    "ONLY_DEFAULT_SEAT",
    "EntitySpec",
    "ExistingEntity",
    "Problem",
    "SeatChoice",
    "Submission",
    "SubmissionRefused",
    "UnresolvedReference",
    "check_submission",
    "default_batch_name",
    "dependencies_of",
    "find_cycles",
    "keys_to_look_up",
    "parse_submission",
    "payload_fingerprint",
    "referenced_keys",
    "resolve_refs",
    "seat_problem",
    "topological_order",
    "validate_payload",
    "validate_submission",
]
