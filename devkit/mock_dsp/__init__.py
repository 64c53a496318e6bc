"""A mock of the DSP that implements the DSP contract (dsp-api.md): `create_app` (app.py) for
in-process tests, `MockDspServer` (server.py) over loopback HTTP, `python -m devkit.mock_dsp`
as a process. Its state, request log and knobs are `app.state.dsp` (state.py).

It imports nothing of the service's contract on purpose: its entity types, statuses
(entities.py) and field rules (validation.py) are a second, independent reading of
dsp-api.md, so a mistake in `dsp_integration.contracts.entity_types` or
`dsp_integration.entities.rules` shows up as a disagreement in the tests instead of being
shared by both sides."""
