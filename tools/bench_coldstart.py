"""Benchmark of cold starts, for `make bench` (tools/bench.py calls `run(stack, token)` and
appends the returned markdown section).

Per deployment, on the running stack's emulators and database, from the source Cloud Run
builds: its package (`tools/package.py`) byte-compiled as Google Cloud's Python functions
buildpack compiles it at build time (`python3 -m compileall -f -q .` in the source directory,
cmd/python/functions_framework/lib/lib.go of GoogleCloudPlatform/buildpacks), so an instance
reads the platform's code from .pyc files as it does in the cloud (a checkout run with
PYTHONDONTWRITEBYTECODE=1, as on these machines, compiles every module of ours at each start):
- import of `main.py`: a fresh interpreter imports it as functions-framework does (wall time
  and the interpreter's CPU time; median of `BENCH_COLDSTART_ROUNDS`, default 3);
- process start to first 200: a fresh `functions-framework` process (the command the stack
  and Cloud Run run) from spawn to the first 200 on its health path, which checks what the
  manifest says it uses (database, Firestore, Pub/Sub), so the first requests' lazy imports
  and client creation are inside; wall time and the CPU the process tree had used by then.
- the floor: the same two figures for a bare functions-framework hello world (the last row),
  what the command itself costs on this machine before any of the platform's code.
Targets (issue 14): import <= 300 ms, start to first 200 <= 0.6 s, both wall time. The load
average is printed with the figures: on a shared machine wall times grow with the load and the
CPU times much less, so compare the CPU columns across runs. Which modules each deployment may
load at start is checked by tests/unit/test_import_budget.py, not here.

Standalone: `python tools/bench_coldstart.py [deployment ...]` starts the emulators (no
functions; SQLite in a temporary local dir) and prints the section.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import emulators  # noqa: E402
from shared.manifests import Deployment  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_COLDSTART_ROUNDS", "3"))
IMPORT_TARGET_S = 0.300
START_TARGET_S = 0.600
START_TIMEOUT_S = 60.0
NAN = float("nan")

# Prints "<wall seconds> <cpu seconds>" of importing argv[1] as functions-framework does
# (spec_from_file_location, module name "main"), in a fresh interpreter.
IMPORT_PROBE = """
import importlib.util, sys, time
t0, c0 = time.perf_counter(), time.process_time()
spec = importlib.util.spec_from_file_location("main", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
sys.modules["main"] = mod
spec.loader.exec_module(mod)
print(time.perf_counter() - t0, time.process_time() - c0)
"""

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of_tree(pid: int) -> float:
    """User + system CPU seconds of `pid` and its live descendants (gunicorn forks the worker
    that answers after the master imported the app)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / _TICK
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, IndexError, ValueError):
        return total
    return total + sum(_cpu_of_tree(int(c)) for c in children)


def build(dep: Deployment, contexts: list[Path], out_dir: Path) -> Path:
    """The deployment's source as Cloud Run builds it: packaged, then byte-compiled the way the
    functions buildpack does; returns the source directory."""
    from tools.package import package

    package(dep, contexts, out_dir)
    source = out_dir / dep.name
    subprocess.run(
        [sys.executable, "-m", "compileall", "-f", "-q", "."],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return source


def _from(env: dict[str, str], source: Path) -> dict[str, str]:
    """`env` with the package, not the checkout, on the import path."""
    return {**env, "PYTHONPATH": str(source)}


def _import_once(env: dict[str, str], main: Path) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, str(main)],
        env=env,
        cwd=main.parent,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def _functions_framework() -> list[str]:
    script = Path(sys.executable).with_name("functions-framework")
    return [str(script)] if script.exists() else [sys.executable, "-m", "functions_framework"]


def _start_once(env: dict[str, str], dep: Deployment, source: Path) -> tuple[float, float]:
    return _serve_once(env, dep.entry_point, source / "main.py", dep.health_path, dep.name)


def _serve_once(
    env: dict[str, str], target: str, source: Path, path: str, name: str
) -> tuple[float, float]:
    """Spawn `functions-framework` serving `target` of `source`; wall and CPU to the first
    200 on `path`."""
    port = emulators.free_port()
    argv = [
        *_functions_framework(),
        "--target",
        target,
        "--source",
        str(source),
        "--signature-type",
        "http",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    url = f"http://127.0.0.1:{port}{path}"
    sess = requests.Session()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=source.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while True:
            try:
                status = sess.get(url, timeout=10).status_code
            except requests.RequestException:  # not listening yet, or a slow first answer
                status = 0
            if status == 200:
                wall = time.perf_counter() - t0
                return wall, _cpu_of_tree(proc.pid)
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} before a 200")
            if time.perf_counter() - t0 > START_TIMEOUT_S:
                raise RuntimeError(f"{name}: no 200 on {url} within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.005)
    finally:
        sess.close()
        os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)


# The floor: a bare functions-framework hello world, served by the same command.
HELLO = """import functions_framework


@functions_framework.http
def hello(request):
    return "ok"
"""


def floor() -> dict[str, float]:
    """Median wall and CPU of a hello world's import and its start to the first 200."""
    with tempfile.TemporaryDirectory(prefix="switchyard-coldstart-floor-") as tmp:
        main = Path(tmp) / "main.py"
        main.write_text(HELLO)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
        imports = [_import_once(env, main) for _ in range(ROUNDS)]
        starts = [_serve_once(env, "hello", main, "/", "hello world") for _ in range(ROUNDS)]
    return {
        "import": statistics.median(w for w, _ in imports),
        "import_cpu": statistics.median(c for _, c in imports),
        "start": statistics.median(w for w, _ in starts),
        "start_cpu": statistics.median(c for _, c in starts),
    }


# The same work without Switchyard: a functions-framework function whose first request makes
# the clients a deployment's health check makes and asks the same things (SELECT 1 through a
# SQLAlchemy engine with the same pool settings; one Firestore document read; the Pub/Sub
# topic it publishes to), the libraries imported when first used as the deployment does. One
# per combination of what the deployments use.
SAME_WORK = """import os

import functions_framework

SQL, FIRESTORE, TOPIC = {sql!r}, {firestore!r}, {topic!r}


@functions_framework.http
def health(request):
    project = os.environ.get("GOOGLE_CLOUD_PROJECT", "switchyard-local")
    if SQL:
        import sqlalchemy

        engine = sqlalchemy.create_engine(
            os.environ["DATABASE_URL"],
            pool_size=int(os.environ.get("DB_POOL_SIZE", "2")),
            max_overflow=int(os.environ.get("DB_MAX_OVERFLOW", "2")),
            pool_pre_ping=True,
        )
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    if FIRESTORE:
        from google.cloud import firestore

        client = firestore.Client(project=project)
        client.collection("health").document("ping").get(timeout=2.0)
    if TOPIC:
        from google.pubsub_v1 import PublisherClient  # the client shared.clients makes

        topic = f"projects/{{project}}/topics/{{TOPIC}}"
        PublisherClient().get_topic(request={{"topic": topic}}, timeout=2.0)
    return {{"status": "ok"}}
"""


def _work_of(dep: Deployment) -> tuple[bool, bool, bool]:
    return dep.uses_sql, dep.uses_firestore or dep.trigger == "event", bool(dep.publishes)


def same_work(st: emulators.Stack, names: list[str] | None = None) -> dict[tuple, float]:
    """Median start-to-200 of the same-work function, per combination of uses."""
    out: dict[tuple, float] = {}
    with tempfile.TemporaryDirectory(prefix="switchyard-coldstart-same-") as tmp:
        for name, dep in sorted(st.catalog.deployments.items()):
            work = _work_of(dep)
            if (names and name not in names) or work in out:
                continue
            main = Path(tmp) / f"same_{len(out)}.py"
            sql, firestore, _ = work
            main.write_text(
                SAME_WORK.format(
                    sql=sql, firestore=firestore, topic=dep.publishes[0] if dep.publishes else ""
                )
            )
            env = st.env_for(dep)
            starts = [_serve_once(env, "health", main, "/", name) for _ in range(ROUNDS)]
            out[work] = statistics.median(w for w, _ in starts)
    return out


def measure(st: emulators.Stack, names: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Medians per deployment: import wall/CPU, start-to-200 wall/CPU (seconds)."""
    results: dict[str, dict[str, float]] = {}
    deps = {n: d for n, d in sorted(st.catalog.deployments.items()) if not names or n in names}
    with tempfile.TemporaryDirectory(prefix="switchyard-coldstart-build-") as tmp:
        contexts = [c.path for c in st.catalog.contexts]
        sources = {name: build(dep, contexts, Path(tmp)) for name, dep in deps.items()}
        # One start thrown away first: the page cache's first read of the packages and the
        # emulators' first requests (their JVMs load classes and compile) are not a
        # deployment's cold start, and would otherwise fall on the first deployment measured.
        warm = max(deps.values(), key=lambda d: len(d.uses) + len(d.publishes))
        _start_once(_from(st.env_for(warm), sources[warm.name]), warm, sources[warm.name])
        for name, dep in deps.items():
            print(f"bench_coldstart: {name} ...", file=sys.stderr, flush=True)
            source = sources[name]
            env = _from(st.env_for(dep), source)
            try:
                imports = [_import_once(env, source / "main.py") for _ in range(ROUNDS)]
                starts = [_start_once(env, dep, source) for _ in range(ROUNDS)]
            except (RuntimeError, subprocess.SubprocessError) as exc:  # one row, not the section
                print(f"bench_coldstart: {name}: {exc}", file=sys.stderr, flush=True)
                results[name] = dict.fromkeys(("import", "import_cpu", "start", "start_cpu"), NAN)
                continue
            results[name] = {
                "import": statistics.median(w for w, _ in imports),
                "import_cpu": statistics.median(c for _, c in imports),
                "start": statistics.median(w for w, _ in starts),
                "start_cpu": statistics.median(c for _, c in starts),
            }
    return results


def _verdict(value: float, target: float) -> str:
    if math.isnan(value):
        return "failed (see the bench's output)"
    return "meets target" if value <= target else f"misses ({value / target:.1f}x)"


def report(
    results: dict[str, dict[str, float]],
    load: tuple[float, float],
    base: dict[str, float] | None = None,
) -> str:
    meets_import = sum(r["import"] <= IMPORT_TARGET_S for r in results.values())
    meets_start = sum(r["start"] <= START_TARGET_S for r in results.values())
    lines = [
        "## Cold start",
        "",
        f"Per deployment, median of {ROUNDS}, run from the source Cloud Run builds: its package "
        "(`tools/package.py`) byte-compiled as Google Cloud's Python functions buildpack does at "
        "build time (`python3 -m compileall -f -q .`), so the platform's modules load from .pyc "
        "files as in the cloud (this machine sets PYTHONDONTWRITEBYTECODE=1: from a checkout "
        "they would be compiled at every start, ~60-90 ms of CPU). Measured: the import of its "
        "`main.py` in a fresh "
        "interpreter (as functions-framework imports it), and a fresh `functions-framework` "
        "process from spawn to the first 200 on its health path (which checks its database, "
        "Firestore and Pub/Sub as its manifest says, so the first request's lazy imports and "
        "client creation are included). Wall time is what the targets are about; CPU is the "
        "interpreter's (import) or the process tree's (start) CPU time at that moment, less "
        f"sensitive to the load of this shared machine (load average {load[0]:.1f} before, "
        f"{load[1]:.1f} after, on {os.cpu_count()} cores). What each deployment may load at "
        "start is checked by `tests/unit/test_import_budget.py`.",
        "",
        "The **same work** column is a functions-framework function without Switchyard whose "
        "first request does what the deployment's health check does (`SAME_WORK`: the same "
        "clients made, the same SELECT 1, document read and topic lookup, the libraries "
        "imported on first use), measured the same way in the same run: what the libraries "
        "and the machine cost before any Switchyard code. The hello world below it is the "
        "floor of functions-framework alone.",
        "",
        "| deployment | import of main.py | CPU | target <= 300 ms | start to first 200 | CPU "
        "| target <= 0.6 s | same work | over it |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in sorted(results.items()):
        bare = r.get("same_work", NAN)
        lines.append(
            f"| `{name}` | {r['import'] * 1000:.0f} ms | {r['import_cpu'] * 1000:.0f} ms | "
            f"{_verdict(r['import'], IMPORT_TARGET_S)} | {r['start']:.2f} s | "
            f"{r['start_cpu']:.2f} s | {_verdict(r['start'], START_TARGET_S)} | "
            f"{bare:.2f} s | {r['start'] - bare:+.2f} s |"
        )
    if base is not None:
        lines.append(
            f"| floor: a bare functions-framework hello world | {base['import'] * 1000:.0f} ms | "
            f"{base['import_cpu'] * 1000:.0f} ms | | {base['start']:.2f} s | "
            f"{base['start_cpu']:.2f} s | | | |"
        )
    n = len(results)
    lines += [
        "",
        f"Import target met by **{meets_import} of {n}** deployments, start-to-200 target by "
        f"**{meets_start} of {n}**.",
    ]
    over = sorted(
        r["start"] - r["same_work"] for r in results.values() if not math.isnan(r["same_work"])
    )
    if over:
        lines += [
            "",
            f"Start to first 200 over the same work without Switchyard: median "
            f"**{statistics.median(over):+.2f} s** ({over[0]:+.2f} to {over[-1]:+.2f} s).",
        ]
    lines += [
        "",
    ]
    return "\n".join(lines)


def run(st: emulators.Stack, token: str, names: list[str] | None = None) -> str:
    """The markdown section (token unused: the health paths are public)."""
    before = os.getloadavg()[0]
    results = measure(st, names)
    try:
        bare = same_work(st, names)
    except (RuntimeError, subprocess.SubprocessError) as exc:
        print(f"bench_coldstart: same work: {exc}", file=sys.stderr, flush=True)
        bare = {}
    for name, r in results.items():
        r["same_work"] = bare.get(_work_of(st.catalog.deployments[name]), NAN)
    try:
        base = floor()
    except (RuntimeError, subprocess.SubprocessError) as exc:
        print(f"bench_coldstart: floor: {exc}", file=sys.stderr, flush=True)
        base = None
    return report(results, (before, os.getloadavg()[0]), base)


def main(argv: list[str]) -> int:
    from tools.bench import make_database

    url, drop = os.environ.get("BENCH_DATABASE_URL", ""), None
    if not url:  # a fresh PostgreSQL database, as in `make bench`
        url, drop = make_database()
    try:
        return _main(argv, url)
    finally:
        if drop is not None:
            drop()


def _main(argv: list[str], database_url: str) -> int:
    with tempfile.TemporaryDirectory(prefix="switchyard-coldstart-") as local:
        st = emulators.Stack(
            ports=emulators.Ports(
                pubsub=emulators.free_port(),
                firestore=emulators.free_port(),
                gateway=emulators.free_port(),
                functions_base=emulators.free_port_block(
                    len(emulators.Stack.catalog_of(ROOT).deployments)
                ),
            ),
            local_dir=Path(local),
            database_url=database_url,
            functions=False,
            log_dir=ROOT / "test-output" / "coldstart",
            echo=False,
            persist_firestore=False,
            scheduler=False,
        )
        try:
            st.start()
            os.environ.update(st.env())
            print(run(st, "", argv or None))
        finally:
            st.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
