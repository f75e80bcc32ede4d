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
  # Worst case: every instance of every sql deployment holds its full pool.
  sql_connection_budget = sum(concat([0], [
    for d in values(module.manifests.deployments) : d.runtime.max_instances * var.db_connections_per_instance if d.uses_sql
  ]))
}

check "sql_connection_budget" {
  assert {
    condition     = local.sql_connection_budget < var.sql_max_connections
    error_message = "Max instances x pool of the sql deployments (${local.sql_connection_budget}) exceeds sql_max_connections (${var.sql_max_connections}): lower max_instances or raise the limit."
  }
}
