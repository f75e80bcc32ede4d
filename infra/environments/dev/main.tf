# The dev environment: the shared platform module with dev's sizes and protections.
# Deployments, topics, subscriptions and schedules come from functions/*/function.yaml.

module "switchyard" {
  source = "../../modules/switchyard"

  project_id    = var.project_id
  region        = var.region
  env           = "dev"
  functions_dir = "${path.root}/../../../functions"
  build_dir     = "${path.root}/../../../build"

  deletion_protection   = false
  sql_tier              = var.sql_tier
  sql_availability_type = "ZONAL"
  sql_max_connections   = var.sql_max_connections
  max_instances_cap     = var.max_instances_cap
  firestore_location    = var.firestore_location
  ci_service_account    = var.ci_service_account
  environment_overrides = var.environment_overrides
}
