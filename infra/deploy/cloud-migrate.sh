#!/usr/bin/env bash
# Run the migrations against the Cloud SQL instance that Terraform manages (Cloud Build's
# migrate steps; also usable by hand, see docs/deploy.md).
#   infra/deploy/cloud-migrate.sh TF_OUTPUTS_JSON      (the file of `terraform output -json`)
# Connects through the Cloud SQL connector (INSTANCE_CONNECTION_NAME from the outputs) as the
# built-in `migrator` user (DB_PASSWORD from Secret Manager) and passes DB_GRANTS, the outputs'
# sql_grants ({schema: [IAM database user, ...]}), so shared.migrate grants each context's
# schema to its deployments. Skips when the state has no instance yet (before the first apply).
set -euo pipefail
outputs="${1:?usage: cloud-migrate.sh TF_OUTPUTS_JSON}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
py="$root/.venv/bin/python"
[[ -x "$py" ]] || py="$(command -v python3)"

output() {
  "$py" - "$outputs" "$1" <<'PY'
import json, sys
try:
    value = json.load(open(sys.argv[1])).get(sys.argv[2], {}).get("value")
except (OSError, ValueError):
    value = None
print("" if value is None else value if isinstance(value, str) else json.dumps(value))
PY
}

conn="$(output sql_instance_connection_name)"
if [[ -z "$conn" ]]; then
  echo "migrate: no Cloud SQL instance in the Terraform state yet: skipped (runs after apply)"
  exit 0
fi
: "${DB_PASSWORD:?DB_PASSWORD (the migrator user's password) is required}"
export INSTANCE_CONNECTION_NAME="$conn"
export DB_GRANTS="$(output sql_grants)"
export DB_USER="${DB_USER:-migrator}" DB_NAME="${DB_NAME:-switchyard}" DB_IAM_AUTH=false
cd "$root"
exec "$py" -m shared.migrate
