"""Errors the client API raises for the CLI to print as one clear line."""

from __future__ import annotations

from dsp_integration.contracts import MAX_FAIRNESS_WEIGHT, MIN_FAIRNESS_WEIGHT


class ServiceError(Exception):
    """The request cannot be carried out; the message says why."""


class UnknownEntity(ServiceError):
    def __init__(self, key: str) -> None:
        super().__init__(f"unknown entity key {key!r}: it was never submitted to this service")
        self.key = key


class EntityEnded(ServiceError):
    pass


class UnknownBatch(ServiceError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown batch {name!r}")
        self.name = name


class UnknownPriority(ServiceError):
    def __init__(self, text: str) -> None:
        super().__init__(f"unknown priority {text!r}: use high, normal or low")
        self.text = text


class BadWeight(ServiceError):
    def __init__(self, text: str) -> None:
        super().__init__(
            f"bad weight {text!r}: use a number from {MIN_FAIRNESS_WEIGHT:g} to "
            f"{MAX_FAIRNESS_WEIGHT:g} (1 is the default share)"
        )
        self.text = text
