"""The web console and HTTP API: `python starter.py serve`."""

from console.app import create_app

__all__ = ["create_app"]
