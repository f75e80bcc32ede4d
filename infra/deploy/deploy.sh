#!/usr/bin/env bash
# Deploy Switchyard with gcloud, without Terraform: one deployment or all, from the manifests.
#   infra/deploy/deploy.sh [--dry-run] [--project P] [--region R] [--env dev|prod]
#     [--max-instances-cap N|none] [DEPLOYMENT ...]
#   DEPLOYMENT=users-api infra/deploy/deploy.sh --dry-run
# Run `make package` first. The work is done by deploy.py (it reads shared.manifests).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
py="$root/.venv/bin/python"
[[ -x "$py" ]] || py="$(command -v python3)"
exec "$py" "$root/infra/deploy/deploy.py" "$@"
