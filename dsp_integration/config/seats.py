"""The DSP seats the service works for (dsp-api-v2.md §1): each one account at a DSP, with its
own connection, credentials and budget.

`DSP_SEATS` lists them (JSON); the flat `DSP_*` settings make the `default` seat, so a
configuration from before seats keeps working unchanged. `Settings.seats()` resolves both into
`Seat`s, reading each seat's secret from the environment."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from pydantic import SecretStr


@dataclass(frozen=True)
class Seat:
    """One seat, resolved: everything a worker needs to call the DSP as this account."""

    name: str
    base_url: str
    api_version: int
    search_lag: float
    rate_limit: int
    rate_window: float
    # With `client_id`, `secret` is the client secret for `POST /v1/oauth/token`; without,
    # it is a static bearer token (version 1's, or a version-2 token that never expires).
    secret: SecretStr = field(repr=False)
    client_id: str | None = None
    # The environment variable that holds the secret, for messages that say what to fix
    # (unset at the mock DSP: its development secret was used).
    secret_env: str | None = None

    @property
    def requests_per_second(self) -> float:
        return self.rate_limit / self.rate_window

    @property
    def uses_client_credentials(self) -> bool:
        return self.client_id is not None


class SeatProblems(ValueError):
    """The seats' configuration is wrong: one line per problem, all of them at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Seats:
    """Every configured seat by name, and which one entities without a seat belong to."""

    by_name: dict[str, Seat]
    default: str

    def __iter__(self) -> Iterator[Seat]:
        return iter(self.by_name.values())

    def __getitem__(self, name: str) -> Seat:
        return self.by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def names(self) -> list[str]:
        return sorted(self.by_name)
