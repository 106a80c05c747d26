"""Stability AI actions for workflow automation engines."""

__version__ = "0.1.0"
