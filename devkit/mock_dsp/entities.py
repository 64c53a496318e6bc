"""An entity at the mock DSP and its lifecycle. Statuses are computed lazily from the
monotonic clock: each processing round starts at creation (or PUT), lasts a fixed number
of seconds drawn at its start, and ends in the outcome its name's marker decides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

ID_PREFIXES = {"advertisers": "adv", "campaigns": "cmp", "creatives": "cre", "ad_groups": "adg"}
FIRST_STATUS = {
    "advertisers": "pending",  # processed in 0 seconds: `active` at once
    "campaigns": "pending",
    "ad_groups": "pending",
    "creatives": "pending_review",
}
SUCCESS_STATUS = {
    "advertisers": "active",
    "campaigns": "active",
    "ad_groups": "active",
    "creatives": "approved",
}
ARCHIVED = "archived"
REJECT_MARKER = "[reject]"
FAIL_MARKER = "[fail]"
_SINGULAR = {
    "advertisers": "advertiser",
    "campaigns": "campaign",
    "ad_groups": "ad group",
    "creatives": "creative",
}


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def outcome_for(entity_type: str, name: str) -> tuple[str, str | None]:
    """The terminal status (and reason) a processing round ends in, decided by `name`."""
    if entity_type == "creatives" and REJECT_MARKER in name:
        return "rejected", "creative policy: the asset breaks the ad content guidelines"
    if entity_type != "advertisers" and FAIL_MARKER in name:
        return (
            "failed",
            f"processing failed: the DSP could not set up this {_SINGULAR[entity_type]}",
        )
    return SUCCESS_STATUS[entity_type], None


@dataclass
class Entity:
    id: str
    type: str
    fields: dict[str, Any]
    created_mono: float
    created_at: datetime
    round_mono: float
    round_at: datetime
    processing_seconds: float
    outcome: str
    outcome_reason: str | None
    archived_at: datetime | None = None
    account: str = ""
    """The account (`MockDsp.account`) of the seat whose token created it: only that seat
    finds it, refers to it or lists it."""

    @classmethod
    def create(
        cls,
        entity_id: str,
        entity_type: str,
        fields: dict[str, Any],
        now: float,
        processing_seconds: float,
        account: str = "",
    ) -> Entity:
        wall = utc_now()
        outcome, reason = outcome_for(entity_type, fields["name"])
        return cls(
            entity_id,
            entity_type,
            fields,
            now,
            wall,
            now,
            wall,
            processing_seconds,
            outcome,
            reason,
            account=account,
        )

    def restart(self, fields: dict[str, Any], now: float, processing_seconds: float) -> None:
        """PUT: new fields, back to the first non-terminal status, processed again."""
        self.fields = fields
        self.round_mono = now
        self.round_at = utc_now()
        self.processing_seconds = processing_seconds
        self.outcome, self.outcome_reason = outcome_for(self.type, fields["name"])

    def archive(self) -> None:
        if self.archived_at is None:
            self.archived_at = utc_now()

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    def _done(self, now: float) -> bool:
        return now - self.round_mono >= self.processing_seconds

    def status(self, now: float) -> str:
        if self.archived:
            return ARCHIVED
        return self.outcome if self._done(now) else FIRST_STATUS[self.type]

    def reason(self, now: float) -> str | None:
        return self.outcome_reason if not self.archived and self._done(now) else None

    def updated_at(self, now: float) -> datetime:
        if self.archived_at is not None:
            return self.archived_at
        if self._done(now):
            return self.round_at + timedelta(seconds=self.processing_seconds)
        return self.round_at

    def is_usable(self, now: float) -> bool:
        return self.status(now) == SUCCESS_STATUS[self.type]

    def created_view(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "status": self.status(now),
            "created_at": iso(self.created_at),
        }

    def status_view(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "status": self.status(now),
            "reason": self.reason(now),
            "updated_at": iso(self.updated_at(now)),
        }

    def full_view(self, now: float) -> dict[str, Any]:
        return {
            **self.fields,
            "id": self.id,
            "type": self.type,
            "status": self.status(now),
            "reason": self.reason(now),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at(now)),
        }
