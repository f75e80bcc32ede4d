"""Interleaved logs: every line of every process, with an aligned and (on a TTY) coloured prefix.

One `LogHub` per stack. Lines go to a stream (stdout by default) and, when a directory is given,
to `<dir>/stack.log` (all processes) and `<dir>/<process>.log` (one each), without colour. The
hub keeps the last lines of each process in memory so failures can be reported with them.
Span lines (JSON, `shared.tracing`'s `log` exporter) are not log lines: they go to the
listeners (the dev dashboard's trace view) only, never to the terminal, the files or the tails.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, TextIO

_PALETTE = ("36", "32", "33", "35", "34", "96", "92", "93", "95", "94", "31", "91")
_RESET = "\033[0m"
STACK = "stack"  # the prefix of the supervisor's own messages
SPAN_LINE = '{"switchyard/span":'  # a finished span (shared.tracing.LOG_KEY), for the dashboard


def use_color(stream: TextIO | None) -> bool:
    """Colour only on a terminal; NO_COLOR turns it off, FORCE_COLOR on."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())


class LogHub:
    """Thread-safe sink of log lines from named processes."""

    def __init__(
        self,
        *,
        stream: TextIO | None = sys.stdout,
        color: bool | None = None,
        log_dir: Path | None = None,
        keep: int = 200,
    ) -> None:
        self.stream = stream
        self.color = use_color(stream) if color is None else color
        self.log_dir = log_dir
        self._lock = threading.Lock()
        self._colors: dict[str, str] = {}
        self._tails: dict[str, collections.deque[str]] = {}
        self._files: dict[str, IO[str]] = {}
        self._keep = keep
        self._width = len(STACK)
        self._all: IO[str] | None = None
        self.listeners: list[Callable[[str, str], None]] = []  # (name, line), e.g. the dashboard
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            self._all = open(log_dir / "stack.log", "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def register(self, *names: str) -> None:
        """Reserve a colour and the prefix width for these names (keeps columns aligned)."""
        with self._lock:
            for name in names:
                self._register(name)

    def _register(self, name: str) -> None:
        if name in self._colors:
            return
        self._colors[name] = "1" if name == STACK else _PALETTE[len(self._colors) % len(_PALETTE)]
        self._tails[name] = collections.deque(maxlen=self._keep)
        self._width = max(self._width, len(name))
        if self.log_dir is not None and name != STACK:  # STACK's lines are stack.log's own
            self._files[name] = open(  # noqa: SIM115
                self.log_dir / f"{name}.log", "a", buffering=1, encoding="utf-8"
            )

    def line(self, name: str, text: str, *, console: bool = True) -> None:
        """Record one line of `name`; `console=False` keeps it out of the stream (noise).
        A span line (`shared.tracing`'s `log` exporter) goes to the listeners only."""
        text = text.rstrip("\r\n")
        if text.startswith(SPAN_LINE):
            for listener in self.listeners:
                with contextlib.suppress(Exception):
                    listener(name, text)
            return
        with self._lock:
            self._register(name)
            self._tails[name].append(text)
            plain = f"{name:<{self._width}} | {text}"
            if self._all is not None:
                self._all.write(plain + "\n")
            if name in self._files:
                self._files[name].write(text + "\n")
            if console and self.stream is not None:
                if self.color:
                    code = self._colors[name]
                    out = f"\033[{code}m{name:<{self._width}} |{_RESET} {text}"
                else:
                    out = plain
                try:
                    self.stream.write(out + "\n")
                    self.stream.flush()
                except (OSError, ValueError):  # closed terminal or pipe: keep running
                    pass
        for listener in self.listeners:
            with contextlib.suppress(Exception):  # a listener never stops the logs
                listener(name, text)

    def say(self, text: str) -> None:
        """A message of the supervisor itself."""
        for ln in text.splitlines() or [""]:
            self.line(STACK, ln)

    def alert(self, text: str) -> None:
        """A message that must not be missed (a process died, a deployment is down)."""
        lines = text.splitlines() or [""]
        if self.color:
            lines = [f"\033[1;31m{ln}{_RESET}" for ln in lines]
        for ln in lines:
            self.line(STACK, ln)

    def tail(self, name: str, n: int = 30) -> list[str]:
        with self._lock:
            return list(self._tails.get(name, ()))[-n:]

    def close(self) -> None:
        with self._lock:
            for f in self._files.values():
                f.close()
            self._files.clear()
            if self._all is not None:
                self._all.close()
                self._all = None
