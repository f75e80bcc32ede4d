"""`python -m emulators`: the local stack (`make dev`), `check`, and `scheduler` job control.

python -m emulators [--only a,b] [--no-functions] [--pubsub-port N] [--firestore-port N]
                    [--gateway-port N] [--functions-base-port N] [--project P] ...
python -m emulators check
python -m emulators scheduler list|pause|resume|run [JOB]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from emulators import _tools
from emulators._errors import LocalStackError
from emulators._logs import use_color
from emulators._ports import Ports, port_is_free
from emulators._scheduler import control
from emulators._stack import DEFAULT_PROJECT, ROOT, Stack


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m emulators",
        description="Run Switchyard locally: emulators, wiring, migrations, every deployment, "
        "the scheduler and the gateway. Ctrl-C stops everything.",
    )
    p.add_argument("--only", help="comma-separated deployments to run (default: all)")
    p.add_argument(
        "--no-functions",
        action="store_true",
        help="only the emulators and the topic/subscription wiring",
    )
    p.add_argument("--no-scheduler", action="store_true", help="do not fire schedule jobs")
    p.add_argument(
        "--no-dashboard", action="store_true", help="no dev dashboard at <gateway>/_dev/"
    )
    p.add_argument(
        "--no-reload",
        action="store_true",
        help="do not watch the source tree (live reload of the deployments a change concerns)",
    )
    p.add_argument("--pubsub-port", type=int, help="default 8085 or $PUBSUB_PORT")
    p.add_argument("--firestore-port", type=int, help="default 8086 or $FIRESTORE_PORT")
    p.add_argument("--gateway-port", type=int, help="default 8080 or $GATEWAY_PORT")
    p.add_argument(
        "--functions-base-port",
        type=int,
        help="first port of the other deployments, default 8101 or $FUNCTIONS_BASE_PORT",
    )
    p.add_argument("--project", default=DEFAULT_PROJECT, help=f"default {DEFAULT_PROJECT}")
    p.add_argument(
        "--local-dir", type=Path, help="local state (default $SWITCHYARD_LOCAL_DIR or .local/)"
    )
    p.add_argument("--log-dir", type=Path, help="also write every process's log under this dir")
    p.add_argument(
        "--no-persist",
        action="store_true",
        help="do not import/export Firestore data in <local-dir>/firestore",
    )
    p.add_argument(
        "--ready-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for every health path (default 60)",
    )
    sub = p.add_subparsers(dest="command")
    sub.add_parser("check", help="show which required tools are installed")
    s = sub.add_parser("scheduler", help="list, pause, resume or run a schedule job")
    s.add_argument("action", choices=["list", "pause", "resume", "run"])
    s.add_argument("job", nargs="?", help="the schedule deployment")
    return p


def _local_dir(args: argparse.Namespace) -> Path:
    return Path(args.local_dir or os.environ.get("SWITCHYARD_LOCAL_DIR") or ROOT / ".local")


def check() -> int:
    rows, ok = _tools.report()
    color = use_color(sys.stdout)
    for tool, present, detail in rows:
        mark = "ok " if present else "MISSING"
        if color:
            mark = f"\033[{'32' if present else '1;31'}m{mark}\033[0m"
        print(f"{mark:>7}  {tool:<24} {detail}")
    ports = Ports.from_env()
    for what, port in (
        ("Pub/Sub", ports.pubsub),
        ("Firestore", ports.firestore),
        ("gateway", ports.gateway),
        ("first function", ports.functions_base),
    ):
        state = "free" if port_is_free(port) else "IN USE"
        print(f"{'':>7}  port {port:<19} {what}: {state}")
    print("all required tools are present" if ok else "some required tools are missing")
    return 0 if ok else 1


def scheduler(args: argparse.Namespace) -> int:
    result = control(_local_dir(args) / "scheduler", args.action, args.job)
    if args.action == "list" and isinstance(result, list):
        for job in result:
            print(
                f"{job['name']:<28} {job['state']:<8} {job['schedule']:<14} "
                f"{job['time_zone']:<10} next={job['next_run']} last={job['last_run']} "
                f"status={job['last_status']}"
            )
    else:
        print(json.dumps(result, indent=2))
    return 0


def dev(args: argparse.Namespace) -> int:
    ports = Ports.from_env(
        pubsub=args.pubsub_port,
        firestore=args.firestore_port,
        gateway=args.gateway_port,
        functions_base=args.functions_base_port,
    )
    stack = Stack(
        project=args.project,
        ports=ports,
        functions=not args.no_functions,
        only=args.only.split(",") if args.only else None,
        local_dir=args.local_dir,
        log_dir=args.log_dir,
        persist_firestore=not args.no_persist,
        scheduler=not args.no_scheduler,
        reload=not args.no_reload,
        dashboard=not args.no_dashboard,
        strict=False,
        ready_timeout_s=args.ready_timeout,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stack.stopping:
            stack.hub.say("stopping, please wait...")
            return
        if not stack.started:
            raise KeyboardInterrupt  # abort the startup; `start` stops what it started
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        stack.start()
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        return 130
    finally:
        stack.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check":
            return check()
        if args.command == "scheduler":
            return scheduler(args)
        return dev(args)
    except LocalStackError as exc:
        msg = f"error: {exc}"
        print(f"\033[1;31m{msg}\033[0m" if use_color(sys.stderr) else msg, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
