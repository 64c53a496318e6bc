"""The web console and HTTP API: `python starter.py serve`."""

from dsp_integration.console.app import create_app

__all__ = ["create_app"]
