"""A mock of the DSP that implements the DSP contract (dsp-api.md): `create_app` (app.py) for
in-process tests, `MockDspServer` (server.py) over loopback HTTP, `python -m devkit.mock_dsp`
as a process. Its state, request log and knobs are `app.state.dsp` (state.py).

It speaks version 1 of the contract by default; `MockDspConfig.api_version = 2` switches it
to dsp-api-v2.md §3 (no idempotency keys, the client's `external_id`, a search by it that
lags `search_lag` seconds behind creation). The fault kinds (config.py, faults.py) include
`drop`: the request is acted on and its connection reset, no answer sent.

Seats and credentials (dsp-api-v2.md §1-2) work at either version: `MockDspConfig.seats`
gives each seat its static token or client credentials and its own rolling window;
`POST /v1/oauth/token` (oauth.py) hands out tokens that expire after `token_lifetime`, at
most `token_requests_per_hour` per client; entities, idempotency keys and the search
belong to a seat (state.py). Without seats, the flat token and window are the one seat
`default`, and the mock behaves as it did before seats.

It imports nothing of the service's contract on purpose: its entity types, statuses
(entities.py) and field rules (validation.py) are a second, independent reading of
dsp-api.md, so a mistake in `dsp_integration.contracts.entity_types` or
`dsp_integration.entities.rules` shows up as a disagreement in the tests instead of being
shared by both sides."""
