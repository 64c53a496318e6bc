"""A mock of the DSP that implements the DSP contract (dsp-api.md): `create_app` (app.py) for
in-process tests, `MockDspServer` (server.py) over loopback HTTP, `python -m mock_dsp`
as a process. Its state, request log and knobs are `app.state.dsp` (state.py)."""
