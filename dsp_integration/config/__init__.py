from dsp_integration.config.settings import Settings

__all__ = ["Settings"]
