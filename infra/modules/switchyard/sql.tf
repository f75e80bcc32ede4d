module "sql" {
  source = "../sql"

  project_id          = var.project_id
  region              = var.region
  instance_name       = var.sql_instance_name
  database_name       = "switchyard"
  tier                = var.sql_tier
  availability_type   = var.sql_availability_type
  max_connections     = var.sql_max_connections
  deletion_protection = var.deletion_protection
  labels              = local.labels
  iam_service_accounts = {
    for n, d in module.manifests.deployments : n => module.service_account[n].email if d.uses_sql
  }

  depends_on = [google_project_service.enabled]
}

locals {
  # Worst case: every instance of every sql deployment holds its full pool. The pool of an
  # instance is min(concurrency, 2) (DB_POOL_SIZE, no overflow: module manifests, decision
  # 0040); max_instances is the manifest's under the environment's max_instances_cap.
  sql_connection_budget = sum(concat([0], [
    for n, d in module.manifests.deployments : local.runtime[n].max_instances * d.db_pool if d.uses_sql
  ]))
}

check "sql_connection_budget" {
  assert {
    condition     = local.sql_connection_budget + var.sql_reserved_connections < var.sql_max_connections
    error_message = "Max instances x pool of the sql deployments (${local.sql_connection_budget}) plus ${var.sql_reserved_connections} reserved exceeds sql_max_connections (${var.sql_max_connections}): lower max_instances (or max_instances_cap), or raise the limit with the tier."
  }
}
