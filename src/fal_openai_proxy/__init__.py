"""An OpenAI-compatible HTTP API in front of fal.ai's language, image, audio and video models."""

__version__ = "0.1.0"
