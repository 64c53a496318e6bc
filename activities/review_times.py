"""How long the DSP takes to decide an entity of one type, learned from our own polls.

Every status read in the audit table says "still pending" or "decided" at some age (seconds
since the POST or PUT that started the round). A decided entity's time is therefore only
known to lie between the last read that saw it pending and the first that saw it decided
(interval-censored), and an entity still pending is known only to take longer than its last
read (right-censored). The DSP's answers narrow it: a decided read's `updated_at` is the
moment its status last changed, the decision, and the round start's `created_at` (a PUT's
`updated_at`) its beginning, both by the DSP's clock; where both are known the decision time
is exact (kept within the interval our own reads allow, should a DSP mean something else by
them). A decision without them sits at the middle of its interval. Kaplan-Meier runs over
those times and the censored ones: simple, never negative, and it needs no model of the
shape. The exact times matter under load: polls that wait in the DSP queue widen the
intervals, and their middles would teach the planner reviews longer than the DSP's, so it
would plan later polls, which wait longer still."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from dsp_integration.contracts import EntityType
from dsp_integration.contracts.statuses import is_terminal_dsp_status
from dsp_integration.database.audit_log import RoundEvent

# Kaplan-Meier multiplies fractions: 2/20 may come out a hair above 0.1.
_ROUNDING = 1e-9


@dataclass(frozen=True)
class ReviewObservation:
    """One processing round: `pending_until` is the age of the last read that saw it pending
    (0 if none did), `decided_by` the age of the first read that saw it decided, or None;
    both the age of the decision where the DSP's times tell it exactly."""

    pending_until: float
    decided_by: float | None = None

    @property
    def time(self) -> float:
        if self.decided_by is None:
            return self.pending_until
        return (self.pending_until + self.decided_by) / 2


class ReviewTimes:
    """A survival function S(t) = P(not decided by age t) over the observed rounds."""

    def __init__(self, observations: Iterable[ReviewObservation]) -> None:
        rounds = sorted(observations, key=lambda o: o.time)
        self.rounds = len(rounds)
        self.decided = sum(1 for o in rounds if o.decided_by is not None)
        self._times: list[float] = []
        self._survival: list[float] = []
        at_risk = len(rounds)
        survival = 1.0
        i = 0
        while i < len(rounds):
            moment = rounds[i].time
            events = leaving = 0
            while i < len(rounds) and rounds[i].time == moment:
                events += rounds[i].decided_by is not None
                leaving += 1
                i += 1
            if events:
                survival *= 1 - events / at_risk
                self._times.append(moment)
                self._survival.append(survival)
            at_risk -= leaving

    def survival(self, age: float) -> float:
        """P(not decided by `age`); beyond the last decision seen, the last value (the data
        cannot tell more)."""
        index = bisect.bisect_right(self._times, age)
        return 1.0 if index == 0 else self._survival[index - 1]

    def age_when_survival_below(self, level: float) -> float | None:
        """The first age at which S drops to `level` or below, or None past the data."""
        for moment, value in zip(self._times, self._survival, strict=True):
            if value <= level + _ROUNDING:
                return moment
        return None

    def quantile(self, probability: float) -> float | None:
        """The age by which `probability` of the rounds are decided, or None past the data."""
        return self.age_when_survival_below(1 - probability)


def observations_from(
    events: Iterable[RoundEvent], entity_type: EntityType
) -> list[ReviewObservation]:
    """Rounds from the audit's round starts and status reads, oldest first. Reads of a round
    whose start is not among the events tell nothing about its age and are skipped."""
    started: dict[str, float] = {}
    started_by_dsp: dict[str, datetime | None] = {}
    pending: dict[str, float] = {}
    out: list[ReviewObservation] = []

    def close_censored(key: str) -> None:
        if pending.get(key, 0.0) > 0:
            out.append(ReviewObservation(pending[key]))

    for event in events:
        at = event.at.timestamp()
        if event.dsp_status is None:
            close_censored(event.entity_key)
            started[event.entity_key] = at
            started_by_dsp[event.entity_key] = event.dsp_at
            pending[event.entity_key] = 0.0
            continue
        start = started.get(event.entity_key)
        if start is None:
            continue
        age = max(0.0, at - start)
        if is_terminal_dsp_status(entity_type, event.dsp_status):
            since = pending[event.entity_key]
            began_by_dsp = started_by_dsp[event.entity_key]
            if began_by_dsp is not None and event.dsp_at is not None:
                exact = (event.dsp_at - began_by_dsp).total_seconds()
                since = age = min(max(exact, since), age)
            out.append(ReviewObservation(since, age))
            del started[event.entity_key], pending[event.entity_key]
            del started_by_dsp[event.entity_key]
        else:
            pending[event.entity_key] = age
    for key in started:
        close_censored(key)
    return out
