# The prod environment: the shared platform module with prod's sizes and protections.
# Deployments, topics, subscriptions and schedules come from functions/*/function.yaml.

module "switchyard" {
  source = "../../modules/switchyard"

  project_id    = var.project_id
  region        = var.region
  env           = "prod"
  functions_dir = "${path.root}/../../../functions"
  build_dir     = "${path.root}/../../../build"

  deletion_protection   = true
  sql_tier              = var.sql_tier
  sql_availability_type = "REGIONAL"
  sql_max_connections   = var.sql_max_connections
  firestore_location    = var.firestore_location
  ci_service_account    = var.ci_service_account
  environment_overrides = var.environment_overrides
}
