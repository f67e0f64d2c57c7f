"""A resilience-focused reference API built with FastAPI."""

__version__ = "0.1.0"
