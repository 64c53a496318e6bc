"""Priority keys of the DSP calls: lower runs first on the DSP task queue."""

from __future__ import annotations

import pytest

from dsp_integration.contracts import DspCallKind, dsp_priority


@pytest.mark.parametrize(
    ("kind", "dependants", "key"),
    [
        (DspCallKind.SUBMIT, 3, 1),
        (DspCallKind.SUBMIT, 1, 1),
        (DspCallKind.SUBMIT, 0, 3),
        (DspCallKind.POLL, 5, 2),
        (DspCallKind.POLL, 0, 4),
        (DspCallKind.ARCHIVE, 0, 3),
        (DspCallKind.ARCHIVE, 4, 3),
    ],
)
def test_priority_key(kind: DspCallKind, dependants: int, key: int) -> None:
    assert dsp_priority(kind, dependants) == key


def test_a_parents_calls_go_before_a_leafs_and_submissions_before_polls() -> None:
    parent = [dsp_priority(kind, 2) for kind in (DspCallKind.SUBMIT, DspCallKind.POLL)]
    leaf = [dsp_priority(kind, 0) for kind in (DspCallKind.SUBMIT, DspCallKind.POLL)]
    assert parent[0] < parent[1] < leaf[0] < leaf[1]
