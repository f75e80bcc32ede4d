"""Framework and gateway overhead, side by side with a bare baseline (issue 14, items 1-3).

`GET /api/users/me` three ways, in the same run, on the same database and the same key:

- **bare**: a functions-framework function written without Switchyard (`BARE` below): the
  RS256 token verified with PyJWT against the same JWKS exactly as `shared.auth.verify` checks
  it (header alg/typ/kid, signature, iss, aud, exp, iat, required claims, lifetime), the same
  row selected with SQLAlchemy Core + pg8000 (same pool settings as `shared.db.engine`, in a
  transaction), the same JSON answered. It is served by the same functions-framework command
  with the same environment as users-api (so the same gunicorn workers and threads);
- **direct**: users-api of the stack;
- **gateway**: the same request through the stack's gateway.

Load: a light asyncio HTTP/1.1 client in this process (raw keep-alive sockets, so the client
costs little of the 2 cores the servers share), 8 connections for `BENCH_OVERHEAD_S` seconds
per target, the targets one after the other, two rounds; the best round of each target is
quoted (req/s, p50, p99 of that round). Unloaded latency: one client, requests interleaved
across the three targets, `BENCH_OVERHEAD_SEQ` per target; the p50 targets are judged on it
(under 8 clients p50 is queueing, i.e. 8 / throughput).

Profile: in a fresh interpreter with users-api's environment, the functions-framework app of
users-api (and of the bare function) is called as a WSGI app `BENCH_PROFILE_N` times with the
same request, under cProfile: CPU per request of each and the top entries by cumulative time.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import emulators  # noqa: E402

SECONDS = float(os.environ.get("BENCH_OVERHEAD_S", "5"))
SEQUENTIAL = int(os.environ.get("BENCH_OVERHEAD_SEQ", "300"))
PROFILE_N = int(os.environ.get("BENCH_PROFILE_N", "2000"))
CLIENTS = 8
ROUNDS = 2
LAST: dict[str, float] = {}  # the ratios of the last run (make bench prints them as JSON)

# The baseline: the same work as users-api's GET /api/users/me, without the platform.
BARE = """
import json, os, time
from datetime import UTC

import flask
import functions_framework
import jwt
from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table, Text
from sqlalchemy import create_engine, select

AUDIENCE = os.environ["BARE_JWT_AUDIENCE"]
ISSUER = os.environ["BARE_JWT_ISSUER"]
TTL_S = int(os.environ["BARE_ACCESS_TTL_S"])
LEEWAY_S = 30
KEYS = {
    jwk["kid"]: jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
    for jwk in json.loads(os.environ["BARE_JWKS"])["keys"]
}
engine = create_engine(
    os.environ["DATABASE_URL"],
    pool_size=int(os.environ["BARE_POOL_SIZE"]),
    max_overflow=int(os.environ["BARE_MAX_OVERFLOW"]),
    pool_pre_ping=os.environ["BARE_PRE_PING"] == "1",
    pool_recycle=1800,
)
users = Table(
    "users",
    MetaData(schema="users"),
    Column("id", String(36), primary_key=True),
    Column("email", String(254)),
    Column("name", String(200)),
    Column("roles", Text),
    Column("active", Boolean),
    Column("version", Integer),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
    Column("deleted_at", DateTime(timezone=True)),
)
COLUMNS = [c for c in users.c if c.name != "deleted_at"]


def problem(status, detail):
    body = {"type": "about:blank", "title": "Unauthorized", "status": status, "detail": detail}
    return flask.Response(json.dumps(body), status=status, mimetype="application/problem+json")


def rfc3339(value):
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@functions_framework.http
def me(request):
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return problem(401, "A bearer token is required.")
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != "RS256" or header.get("typ") != "at+jwt":
            return problem(401, "The token is not valid.")
        key = KEYS.get(str(header.get("kid") or ""))
        if key is None:
            return problem(401, "The token was signed by an unknown key.")
        claims = jwt.decode(
            token, key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER,
            leeway=LEEWAY_S, options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
        )
    except jwt.PyJWTError:
        return problem(401, "The token is not valid.")
    iat, exp = claims["iat"], claims["exp"]
    if iat > time.time() + LEEWAY_S or exp - iat > TTL_S + LEEWAY_S:
        return problem(401, "The token's lifetime exceeds the maximum.")
    if not isinstance(claims.get("roles", []), list):
        return problem(401, "The token's roles claim is malformed.")
    with engine.begin() as conn:
        row = conn.execute(
            select(*COLUMNS).where(users.c.id == str(claims["sub"]), users.c.deleted_at.is_(None))
        ).first()
    if row is None:
        return problem(404, "No such user.")
    out = {
        "id": row.id, "email": row.email, "name": row.name, "roles": json.loads(row.roles),
        "active": row.active, "version": row.version,
        "created_at": rfc3339(row.created_at), "updated_at": rfc3339(row.updated_at),
    }
    return flask.Response(json.dumps(out), mimetype="application/json")
"""


# --- load --------------------------------------------------------------------------------


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the processes of process group `pgid`."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class Target:
    """A URL to load, and the process groups whose CPU its requests cost (the servers)."""

    def __init__(self, name: str, url: str, token: str, groups: tuple[int, ...] = ()) -> None:
        parts = urlsplit(url)
        self.name, self.url, self.groups = name, url, groups
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.request = (
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
        ).encode()


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes) -> int:
    writer.write(req)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _load(t: Target, clients: int, seconds: float) -> tuple[float, list[float]]:
    lat: list[float] = []
    stop = time.monotonic() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection(t.host, t.port)
        try:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                status = await _one(reader, writer, t.request)
                lat.append(time.perf_counter() - t0)
                if status != 200:
                    raise RuntimeError(f"{t.name}: HTTP {status}")
        finally:
            writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    return len(lat) / (time.monotonic() - t0), lat


async def _sequential(targets: list[Target], n: int) -> dict[str, list[float]]:
    conns = {t.name: await asyncio.open_connection(t.host, t.port) for t in targets}
    out: dict[str, list[float]] = {t.name: [] for t in targets}
    try:
        for _ in range(n):
            for t in targets:
                reader, writer = conns[t.name]
                t0 = time.perf_counter()
                if await _one(reader, writer, t.request) != 200:
                    raise RuntimeError(f"{t.name}: not 200")
                out[t.name].append(time.perf_counter() - t0)
    finally:
        for _, writer in conns.values():
            writer.close()
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def measure(targets: list[Target]) -> dict[str, Any]:
    """Best of ROUNDS rounds of CLIENTS keep-alive clients per target, then unloaded latency."""
    rounds: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
    for t in targets:  # warm every path (connections, caches, the pools)
        asyncio.run(_load(t, CLIENTS, 1.0))
    for _ in range(ROUNDS):
        for t in targets:
            cpu0 = [group_cpu_s(g) for g in t.groups]
            rps, lat = asyncio.run(_load(t, CLIENTS, SECONDS))
            cpu = [(group_cpu_s(g) - c) / len(lat) for g, c in zip(t.groups, cpu0, strict=True)]
            rounds[t.name].append(
                {"rps": rps, "p50": pct(lat, 50), "p99": pct(lat, 99), "n": len(lat), "cpu": cpu}
            )
    seq = asyncio.run(_sequential(targets, SEQUENTIAL))
    return {
        "best": {n: max(r, key=lambda x: x["rps"]) for n, r in rounds.items()},
        "rounds": rounds,
        "seq": {n: {"p50": pct(v, 50), "p99": pct(v, 99), "n": len(v)} for n, v in seq.items()},
    }


# --- the bare function -------------------------------------------------------------------


def bare_env(st: emulators.Stack) -> dict[str, str]:
    """users-api's environment (same WORKERS / THREADS, same DATABASE_URL), plus the facts the
    bare function needs: the JWKS auth serves, the token checks' values, the pool settings."""
    from shared.config import Settings

    jwks = requests.get(st.gateway_url + "/api/auth/jwks.json", timeout=10)
    jwks.raise_for_status()
    env = st.env_for(st.catalog.deployments["users-api"])
    defaults = Settings()
    env.update(
        BARE_JWKS=jwks.text,
        BARE_JWT_AUDIENCE=env.get("JWT_AUDIENCE", defaults.jwt_audience),
        BARE_JWT_ISSUER=env.get("JWT_ISSUER", defaults.jwt_issuer),
        BARE_ACCESS_TTL_S=str(defaults.access_ttl_s),
        BARE_POOL_SIZE=env.get("DB_POOL_SIZE", str(defaults.db_pool_size)),
        BARE_MAX_OVERFLOW=env.get("DB_MAX_OVERFLOW", str(defaults.db_max_overflow)),
        BARE_PRE_PING="1",
    )
    return env


def start_bare(env: dict[str, str], src: Path, token: str) -> tuple[subprocess.Popen, str]:
    port = emulators.free_port()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "functions-framework"),
            "--target",
            "me",
            "--source",
            str(src),
            "--signature-type",
            "http",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        cwd=src.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api/users/me"
    deadline = time.monotonic() + 60
    while True:
        try:
            r = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
            if r.status_code == 200:
                break
            raise RuntimeError(f"the bare function answered {r.status_code}: {r.text[:200]}")
        except requests.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bare function did not start") from None
            time.sleep(0.1)
    return proc, url


def same_answer(bare_url: str, direct_url: str, token: str) -> None:
    """The baseline answers what users-api answers (same JSON), or it measures something else."""
    headers = {"Authorization": f"Bearer {token}"}
    a = requests.get(bare_url, headers=headers, timeout=10).json()
    b = requests.get(direct_url, headers=headers, timeout=10).json()
    if a != b:
        raise RuntimeError(f"the bare function answers {a}, users-api {b}")


# --- profile -----------------------------------------------------------------------------

PROFILE = r"""
import cProfile, io, pstats, sys, time
import functions_framework
from werkzeug.test import EnvironBuilder

source, target, token = sys.argv[1:4]
n, top = int(sys.argv[4]), int(sys.argv[5])
app = functions_framework.create_app(target=target, source=source, signature_type="http")
headers = {"Authorization": "Bearer " + token}
base = EnvironBuilder(path="/api/users/me", headers=headers).get_environ()

def call():
    env = dict(base)
    env["wsgi.input"] = io.BytesIO(b"")
    status = []
    body = b"".join(app(env, lambda s, h, e=None: status.append(s)))
    assert status[0].startswith("200"), (status, body[:200])

for _ in range(200):
    call()
t0 = time.process_time()
for _ in range(n):
    call()
print(f"CPU {(time.process_time() - t0) / n * 1e6:.0f}")
prof = cProfile.Profile(time.process_time)  # CPU time: waits on the database are not counted
prof.enable()
for _ in range(n):
    call()
prof.disable()
stats = pstats.Stats(prof).stats

def short(file, line, name):
    file = file.split("site-packages/")[-1]
    for marker in ("/functions/", "/shared/", "/tools/"):
        if marker in file:
            file = marker[1:] + file.split(marker, 1)[1]
    file = file.split("/")[-1] if file.startswith("/tmp/") else file
    return f"{file}:{line}({name})"

rows = sorted(
    ((ct, tt, nc, short(*k)) for k, (cc, nc, tt, ct, _) in stats.items()), reverse=True
)
for kind, ordered in (("CUM", rows), ("OWN", sorted(rows, key=lambda r: -r[1]))):
    for ct, tt, nc, where in ordered[:top]:
        print(f"{kind} {ct / n * 1e6:.0f}\t{tt / n * 1e6:.0f}\t{nc / n:.1f}\t{where}")
"""


def profile(env: dict[str, str], source: Path, target: str, token: str, top: int = 22) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROFILE, str(source), target, token, str(PROFILE_N), str(top)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"profile of {source} failed: {out.stderr[-2000:]}")
    cpu = 0.0
    rows: dict[str, list[tuple[float, float, float, str]]] = {"CUM": [], "OWN": []}
    for line in out.stdout.splitlines():
        if line.startswith("CPU "):
            cpu = float(line[4:])
        elif line[:4] in ("CUM ", "OWN "):
            ct, tt, nc, where = line[4:].split("\t")
            rows[line[:3]].append((float(ct), float(tt), float(nc), where))
    return {"cpu_us": cpu, "cum": rows["CUM"], "own": rows["OWN"]}


# --- report ------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _ms(s: float) -> str:
    return f"{s * 1000:.2f} ms"


def section(m: dict[str, Any], prof: dict[str, dict], load: str) -> str:
    best, seq = m["best"], m["seq"]
    bare, direct, gw = best["bare"], best["direct"], best["gateway"]
    dep_ratio = direct["rps"] / bare["rps"]
    gw_direct = gw["rps"] / direct["rps"]
    gw_bare = gw["rps"] / bare["rps"]
    p50_ratio = seq["direct"]["p50"] / seq["bare"]["p50"]
    added = seq["gateway"]["p50"] - seq["direct"]["p50"]
    LAST.update(
        deployment_over_bare=round(dep_ratio, 3),
        deployment_p50_over_bare=round(p50_ratio, 3),
        gateway_over_direct=round(gw_direct, 3),
        gateway_over_bare=round(gw_bare, 3),
        gateway_added_p50_ms=round(added * 1000, 3),
    )
    lines = [
        "## Framework and gateway overhead",
        "",
        "`GET /api/users/me` three ways in the same run (`tools/bench_overhead.py`): **bare**, a "
        "functions-framework function without Switchyard doing the same work (the RS256 token "
        "verified with PyJWT against the same JWKS with the same checks, the same row selected "
        "with SQLAlchemy + pg8000 from the same database in a transaction with the same pool "
        "settings, the same JSON; checked equal to users-api's answer before measuring), served "
        "by the same functions-framework command with users-api's environment (gunicorn, "
        "1 worker x 8 threads); **direct**, users-api; **gateway**, the same request through the "
        f"gateway. Load: {CLIENTS} keep-alive clients (raw asyncio HTTP/1.1 in the bench process) "
        f"for {SECONDS:.0f} s per target, {ROUNDS} rounds, the best round of each quoted. "
        f"Unloaded: one client, {seq['bare']['n']} requests per target interleaved. "
        "Server CPU: user + system time of the serving processes during the quoted round, per "
        "request (through the gateway: the gateway + users-api behind it), which the machine's "
        "other load disturbs far less than the rates. "
        f"Load average at the time: {load}.",
        "",
        "| target | req/s (8 clients) | p50 (8 clients) | p99 (8 clients) "
        "| p50 (1 client) | p99 (1 client) | server CPU per request, us |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in (
        ("bare", "bare baseline"),
        ("direct", "users-api direct"),
        ("gateway", "through the gateway"),
    ):
        b, s = best[name], seq[name]
        cpu = " + ".join(f"{c * 1e6:.0f}" for c in b.get("cpu", [])) or "-"
        lines.append(
            f"| {label} | {b['rps']:.0f} | {_ms(b['p50'])} | {_ms(b['p99'])} "
            f"| {_ms(s['p50'])} | {_ms(s['p99'])} | {cpu} |"
        )
    rounds = "; ".join(
        f"{n} " + " / ".join(f"{r['rps']:.0f}" for r in m["rounds"][n]) for n in m["rounds"]
    )
    lines += [
        "",
        f"Rounds (req/s): {rounds}.",
        "",
        "| target | figure | verdict |",
        "|---|---|---|",
        f"| deployment >= 0.9x bare throughput | {dep_ratio:.2f}x | {_verdict(dep_ratio >= 0.9)} |",
        f"| deployment p50 <= 1.1x bare p50 (1 client) | {p50_ratio:.2f}x "
        f"| {_verdict(p50_ratio <= 1.1)} |",
        f"| gateway/direct throughput >= 0.85 | {gw_direct:.2f} | {_verdict(gw_direct >= 0.85)} |",
        f"| gateway p50 added <= 1 ms (1 client) | {_ms(added)} | {_verdict(added <= 0.001)} |",
        f"| gateway/bare throughput (no target) | {gw_bare:.2f} | - |",
        "",
    ]
    cpu_direct, cpu_gw = direct.get("cpu") or [], gw.get("cpu") or []
    if len(cpu_direct) == 1 and len(cpu_gw) == 2 and sum(cpu_gw) > 0:
        bound = cpu_direct[0] / sum(cpu_gw)
        lines += [
            "When the cores are the bottleneck (a shared machine), a rate follows the CPU a "
            "request costs, and gateway/direct comes to about users-api's CPU per request "
            "direct over the gateway's plus users-api's behind it, "
            f"{cpu_direct[0] * 1e6:.0f} / ({cpu_gw[0] * 1e6:.0f} + {cpu_gw[1] * 1e6:.0f}) = "
            f"**{bound:.2f}** in this run; the gateway's own CPU per request is "
            f"{cpu_gw[0] / cpu_direct[0]:.2f}x users-api's.",
            "",
        ]
    for name, label in (("direct", "users-api"), ("bare", "the bare function")):
        p = prof.get(name)
        if not p:
            continue
        lines += [
            f"Profile of {label} (cProfile on CPU time, its functions-framework app called as a "
            f"WSGI app in one interpreter, {PROFILE_N} requests, no server or socket): "
            f"**{p['cpu_us']:.0f} us CPU per request** without the profiler (with it, every "
            "figure below is inflated alike). Top entries per request, by cumulative CPU "
            "(left) and by own CPU (right):",
            "",
            "| cumulative us | calls | function | own us | function |",
            "|---|---|---|---|---|",
        ]
        for (ct, _, nc, where), (_, tt, _, own) in zip(p["cum"], p["own"], strict=False):
            lines.append(f"| {ct:.0f} | {nc:g} | `{where}` | {tt:.0f} | `{own}` |")
        lines.append("")
    return "\n".join(lines)


def run(st: emulators.Stack, token: str) -> str:
    src = Path(tempfile.mkdtemp(prefix="switchyard-overhead-")) / "bare_users_me.py"
    src.write_text(BARE)
    env = bare_env(st)
    proc, bare_url = start_bare(env, src, token)
    try:
        direct_url = st.url_of("users-api") + "/api/users/me"
        gw_url = st.gateway_url + "/api/users/me"
        same_answer(bare_url, direct_url, token)
        users, gateway = st.children["users-api"].pid, st.children["gateway"].pid
        targets = [
            Target("bare", bare_url, token, (proc.pid,)),
            Target("direct", direct_url, token, (users,) if users else ()),
            Target("gateway", gw_url, token, (gateway, users) if gateway and users else ()),
        ]
        load0 = os.getloadavg()[0]
        m = measure(targets)
        load1 = os.getloadavg()[0]
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(10)
    prof = {}
    if PROFILE_N > 0:
        prof["direct"] = profile(env, ROOT / "functions" / "users" / "main.py", "api", token)
        prof["bare"] = profile(env, src, "me", token, top=12)
    return section(m, prof, f"{load0:.0f} -> {load1:.0f}")


def main() -> int:
    from tools.bench import run_alone

    return run_alone("overhead", run, only=["gateway", "auth-api", "users-api"])


if __name__ == "__main__":
    sys.exit(main())
