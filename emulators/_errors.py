"""Exceptions of the local stack: each message says what is wrong and what to do about it."""

from __future__ import annotations


class LocalStackError(RuntimeError):
    """The local stack cannot start or run; the message says what to change."""


class ToolMissingError(LocalStackError):
    """A required tool (gcloud, java, an emulator component) is not installed."""


class PortBusyError(LocalStackError):
    """A port the stack needs is already in use."""

    def __init__(self, message: str, port: int) -> None:
        super().__init__(message)
        self.port = port


class StartupError(LocalStackError):
    """A process of the stack did not start or did not become healthy."""
