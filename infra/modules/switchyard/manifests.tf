# Everything per deployment is derived from the manifests in one pure module (no provider), so
# the same derivation can be evaluated offline by the tests (tests/infra). Refer to its outputs
# one by one (module.manifests.<output>), never to the whole module object: its environment
# output depends on module.sql, which depends on the service accounts derived here.
module "manifests" {
  source = "../manifests"

  functions_dir       = var.functions_dir
  project_id          = var.project_id
  project_number      = data.google_project.this.number
  region              = var.region
  env                 = var.env
  sql_connection_name = module.sql.connection_name
  database_name       = "switchyard"
}

locals {
  labels = merge(var.labels, { app = "switchyard", env = var.env })

  pubsub_service_agent = "service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

data "google_project" "this" {
  project_id = var.project_id
}
