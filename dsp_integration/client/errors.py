"""Errors the client API raises for the CLI to print as one clear line."""

from __future__ import annotations


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
