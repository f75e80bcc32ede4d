#!/usr/bin/env bash
# The machine setup `make test` needs, shared by `make test` and `.ci/run` (one place):
#   - PostgreSQL answering on 127.0.0.1:5432 (starts the local Debian cluster when it is down);
#   - Debian packages the tests drive for real: chromium (browser tests), openssh-server (the
#     automation context's SSH tests), postgresql-client (pg_dump for ops backups); installed
#     with apt-get when running as root (or with sudo when it needs no password);
#   - terraform (the infra tests validate and plan offline with infra/offline's schema-only
#     provider; the real provider is never needed);
#   - the Cloud SDK emulators (checked by `python -m emulators check`, called by the Makefile).
# Never downloads a browser or a toolchain of its own. Exits non-zero naming what is missing and
# how to install it. Idempotent and quick when everything is there.
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
missing=()

say() { echo "setup: $*"; }

apt_install() {
  local packages=("$@")
  local runner=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      runner=(sudo -n)
    else
      return 1
    fi
  fi
  say "installing Debian packages: ${packages[*]}"
  "${runner[@]}" apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive "${runner[@]}" apt-get install -y -qq "${packages[@]}" >/dev/null
}

# --- Debian packages ----------------------------------------------------------------------
# command to look for | Debian package | what it is for
wanted=(
  "chromium|chromium|the browser tests (Playwright drives Debian's Chromium)"
  "sshd|openssh-server|the automation context's SSH tests"
  "pg_dump|postgresql-client|the ops database backups"
)
to_install=()
for entry in "${wanted[@]}"; do
  IFS='|' read -r cmd pkg why <<<"$entry"
  if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$cmd" ] &&
    ! compgen -G "/usr/lib/postgresql/*/bin/$cmd" >/dev/null; then
    to_install+=("$pkg")
  fi
done
if [ "${#to_install[@]}" -gt 0 ]; then
  if ! apt_install "${to_install[@]}"; then
    for pkg in "${to_install[@]}"; do
      missing+=("$pkg (apt-get install $pkg; needs root)")
    done
  fi
fi

# --- Terraform (tests/infra: fmt, the manifests module, validate + plan offline) -----------
# Not a Debian package and never downloaded here: HashiCorp's release or apt repository.
if ! command -v terraform >/dev/null 2>&1; then
  missing+=("terraform >= 1.5 (tests/infra; install HashiCorp's release binary or its apt package)")
fi

# --- PostgreSQL -----------------------------------------------------------------------------
pg_up() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null
  else
    (exec 3<>"/dev/tcp/$PG_HOST/$PG_PORT") 2>/dev/null
  fi
}
if [ -z "${TEST_DATABASE_URL:-}" ] && ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && command -v pg_lsclusters >/dev/null 2>&1; then
    read -r version cluster _ < <(pg_lsclusters --no-header | head -1) || true
    if [ -n "${version:-}" ]; then
      say "PostgreSQL is down; starting cluster $version/$cluster"
      pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start || true
      for _ in $(seq 1 30); do pg_up && break; sleep 1; done
    fi
  fi
  pg_up || missing+=("PostgreSQL on $PG_HOST:$PG_PORT (user postgres, trust auth), or TEST_DATABASE_URL")
fi

if [ "${#missing[@]}" -gt 0 ]; then
  for m in "${missing[@]}"; do echo "setup: missing: $m" >&2; done
  exit 1
fi
say "machine ready (PostgreSQL, chromium, sshd, pg_dump, terraform)"
