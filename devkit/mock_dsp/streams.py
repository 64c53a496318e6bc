"""The mock's random draws, in independent streams keyed by entity.

With one shared generator, what an entity drew depended on every request for other entities
that came before it, so a seed did not make a run repeatable once requests interleaved
differently. Here each (key, purpose) has its own generator, seeded with
`f"{seed}:{key}:{purpose}"`: with the same seed an entity meets the same faults, id and review
time whatever happens to the others."""

from __future__ import annotations

import random


class RandomStreams:
    """Per-key random generators; without a seed all keys share one unseeded generator."""

    def __init__(self, seed: int | None) -> None:
        self._seed = seed
        self._unseeded = random.Random()
        self._streams: dict[tuple[str, str], random.Random] = {}

    def stream(self, key: str, purpose: str) -> random.Random:
        if self._seed is None:
            return self._unseeded
        found = self._streams.get((key, purpose))
        if found is None:
            found = random.Random(f"{self._seed}:{key}:{purpose}")
            self._streams[(key, purpose)] = found
        return found


def request_key(path: str, idempotency_key: str | None) -> str:
    """The entity a request is about, as far as the request itself says: a create's
    Idempotency-Key (its retries share it), else the entity's path (`/v1/creatives/cre_1`
    for its status, its view, its PUT and its DELETE alike)."""
    if idempotency_key:
        return idempotency_key
    return path.removesuffix("/status")
