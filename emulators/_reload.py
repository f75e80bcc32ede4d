"""Live reload of `make dev`: watch the source tree, restart only what a change concerns.

A `Reloader` watches `functions/` and `shared/` with watchfiles (Python files and manifests).
For each batch of changes (one save, or a checkout of many files):

- every changed Python file is compiled first; a syntax error is shown with its traceback and
  the deployments it concerns are not restarted (their old processes keep serving);
- a changed `functions/<context>/function.yaml` reloads the manifests (an invalid manifest is
  shown and ignored), re-wires topics and subscriptions, and restarts what the manifests changed
  (`Stack.apply_catalog`);
- a change under `shared/` restarts every deployment; one under `functions/<context>/` restarts
  the deployments of that context;
- each restart is `Stack.reload_deployment`: the new process answers its health path before the
  old one stops, so no request is dropped and a new process that cannot start leaves the old one
  serving.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import watchfiles

from shared import manifests

if TYPE_CHECKING:
    from emulators._stack import Stack

MANIFEST = "function.yaml"


class _SourceFilter(watchfiles.DefaultFilter):
    """Python files and manifests; not bytecode, editor swap files, caches."""

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        return (path.endswith(".py") or path.endswith("/" + MANIFEST)) and super().__call__(
            change, path
        )


def syntax_errors(paths: Iterable[Path]) -> dict[Path, str]:
    """path -> the formatted SyntaxError of every file that does not compile."""
    errors: dict[Path, str] = {}
    for path in paths:
        try:
            source = path.read_bytes()
        except OSError:
            continue  # deleted since: the restart will tell
        try:
            compile(source, str(path), "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            errors[path] = "".join(traceback.format_exception_only(exc)).rstrip()
    return errors


class Reloader:
    """Watches a stack's source tree in a thread; `apply` is the reaction to one batch."""

    def __init__(self, stack: Stack, *, debounce_ms: int = 400, step_ms: int = 30) -> None:
        self.stack = stack
        self.root = stack.root
        self.paths = [p for p in (self.root / "functions", self.root / "shared") if p.is_dir()]
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.reloads = 0  # batches applied (tests and the dashboard read it)
        self.last: dict[str, object] = {}  # what the last batch did
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Reloader:
        self._thread = threading.Thread(target=self._run, name="reload", daemon=True)
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        self._ready.set()
        for changes in watchfiles.watch(
            *self.paths,
            watch_filter=_SourceFilter(),
            debounce=self.debounce_ms,
            step=self.step_ms,
            stop_event=self._stop,
            raise_interrupt=False,
        ):
            if self._stop.is_set() or self.stack.stopping:
                return
            try:
                self.apply({Path(p) for _, p in changes})
            except Exception as exc:  # noqa: BLE001 - the watcher must survive any one batch
                self.stack.hub.alert(f"!!! reload failed: {exc!r}")

    # -- one batch ---------------------------------------------------------------------------
    def _context_of(self, path: Path) -> str | None:
        """The context directory a path is in (functions/<context>/...), else None."""
        try:
            rel = path.relative_to(self.root / "functions")
        except ValueError:
            return None
        return rel.parts[0] if len(rel.parts) > 1 else None

    def _in_shared(self, path: Path) -> bool:
        return path.is_relative_to(self.root / "shared")

    def affected(self, paths: Iterable[Path]) -> set[str]:
        """The running deployments that changed Python files concern (not manifests)."""
        py = [p for p in paths if p.suffix == ".py"]
        running = {d.name: d for d in self.stack.selected}
        if any(self._in_shared(p) for p in py):
            return set(running)
        contexts = {self._context_of(p) for p in py} - {None}
        return {n for n, d in running.items() if d.source_dir.name in contexts}

    def apply(self, paths: set[Path]) -> dict[str, object]:
        """React to one batch of changed paths; what it did (also kept in `last`)."""
        t0 = time.monotonic()
        stack, hub = self.stack, self.stack.hub
        shown = sorted(str(p.relative_to(self.root)) for p in paths if p.is_relative_to(self.root))
        hub.say(f"changed: {', '.join(shown[:5])}{' ...' if len(shown) > 5 else ''}")
        errors = syntax_errors(p for p in paths if p.suffix == ".py")
        for path, text in errors.items():
            hub.alert(f"!!! {path.relative_to(self.root)} does not compile:\n{text}")
        restart: set[str] = set()
        if any(p.name == MANIFEST for p in paths):
            try:
                catalog = manifests.load(self.root / "functions")
            except Exception as exc:  # noqa: BLE001 - any invalid manifest: say it, keep going
                hub.alert(f"!!! the manifests do not load, nothing re-wired: {exc}")
            else:
                restart |= stack.apply_catalog(catalog)
        running = {d.name: d for d in stack.selected}
        restart |= self.affected(paths)
        # a syntax error blocks the deployments that would import the broken file
        broken_shared = any(self._in_shared(p) for p in errors)
        broken_contexts = {self._context_of(p) for p in errors}
        blocked = {
            n
            for n in restart
            if n in running and (broken_shared or running[n].source_dir.name in broken_contexts)
        }
        if blocked:
            hub.alert(
                f"!!! not reloading {', '.join(sorted(blocked))}: the old process"
                f"{'es keep' if len(blocked) > 1 else ' keeps'} serving until the error is fixed"
            )
        todo = sorted((restart & set(running)) - blocked)
        results: dict[str, bool] = {}
        threads = [
            threading.Thread(
                target=lambda n=n: results.__setitem__(n, stack.reload_deployment(n)),
                name=f"reload-{n}",
            )
            for n in todo
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        ok = sorted(n for n, good in results.items() if good)
        failed = sorted(n for n, good in results.items() if not good)
        took = time.monotonic() - t0
        if ok:
            hub.say(f"reloaded {', '.join(ok)} in {took:.1f} s")
        elif not todo and not blocked and not errors:
            hub.say("nothing to reload")
        self.reloads += 1
        self.last = {
            "paths": shown,
            "reloaded": ok,
            "failed": failed,
            "blocked": sorted(blocked),
            "syntax_errors": {str(p): t for p, t in errors.items()},
            "seconds": took,
            "detected_at": t0,
        }
        return self.last
