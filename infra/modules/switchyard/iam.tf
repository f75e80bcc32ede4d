# One service account per deployment with only the roles it needs (project roles from
# module.manifests.project_roles: Cloud SQL client + instance user when it uses sql; Datastore
# user, conditioned on the database, when it uses firestore or consumes events: below). Resource-level grants live next to their
# resources (topics: pubsub.tf, secrets: secrets.tf). No basic roles anywhere.

module "service_account" {
  source   = "../service_account"
  for_each = module.manifests.deployments

  project_id    = var.project_id
  account_id    = module.manifests.account_ids[each.key]
  display_name  = "Switchyard ${each.key}"
  description   = each.value.description
  project_roles = module.manifests.project_roles[each.key]

  depends_on = [google_project_service.enabled]
}

# Identity in the OIDC tokens of the push subscriptions.
module "push_invoker" {
  source = "../service_account"

  project_id   = var.project_id
  account_id   = "switchyard-push-invoker"
  display_name = "Switchyard Pub/Sub push invoker"
  description  = "Identity of push subscriptions calling event deployments."

  depends_on = [google_project_service.enabled]
}

# Identity in the OIDC tokens of the Cloud Scheduler jobs.
module "scheduler_invoker" {
  source = "../service_account"

  project_id   = var.project_id
  account_id   = "switchyard-scheduler"
  display_name = "Switchyard Cloud Scheduler invoker"
  description  = "Identity of Cloud Scheduler jobs calling schedule deployments."

  depends_on = [google_project_service.enabled]
}

# Cloud Build identity that builds the function images (instead of the default compute SA).
module "builder" {
  source = "../service_account"

  project_id    = var.project_id
  account_id    = "switchyard-builder"
  display_name  = "Switchyard function builder"
  description   = "Builds Cloud Run function images from the source zips."
  project_roles = ["roles/artifactregistry.writer", "roles/logging.logWriter", "roles/storage.objectViewer"]

  depends_on = [google_project_service.enabled]
}

# Pub/Sub mints the push OIDC tokens as its service agent.
resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  service_account_id = module.push_invoker.id
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${local.pubsub_service_agent}"
}

locals {
  invoker_members = merge(
    { for n, sa in module.service_account : n => sa.member },
    { "@push" = module.push_invoker.member, "@scheduler" = module.scheduler_invoker.member },
  )
}

# run.invoker only on the targets: the push invoker on event deployments, the scheduler
# invoker on schedule deployments, the gateway on the http deployments, and a deployment on
# the http deployments its manifest declares in `calls` (shared.clients.call), no others.
resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = module.manifests.invoker_bindings

  project  = var.project_id
  location = var.region
  name     = local.functions[each.value.target].name
  role     = "roles/run.invoker"
  member   = local.invoker_members[each.value.invoker]
}

# The gateways read the state (Ready condition) of the event and schedule deployments for
# /api/health; they may not invoke them (decision 0033).
resource "google_cloud_run_v2_service_iam_member" "health_viewer" {
  for_each = module.manifests.health_viewer_bindings

  project  = var.project_id
  location = var.region
  name     = local.functions[each.value.target].name
  role     = "roles/run.viewer"
  member   = module.service_account[each.value.viewer].member
}

# Firestore: roles/datastore.user on the platform's database only, by an IAM condition on the
# database's resource name (decision 0033). Firestore IAM stops at the database: narrower
# (per collection) access would need a database per context.
resource "google_project_iam_member" "firestore" {
  for_each = module.manifests.firestore_bindings

  project = var.project_id
  role    = each.value.role
  member  = module.service_account[each.key].member

  condition {
    title       = "firestore ${each.value.database}"
    description = "Firestore of the platform's database only (decision 0033)."
    expression  = each.value.condition
  }
}

# Cloud Trace: every runtime account writes its own deployment's spans (shared.tracing with
# Google's exporter, decision 0046). roles/cloudtrace.agent can only write traces, not read.
resource "google_project_iam_member" "trace_agent" {
  for_each = module.manifests.deployments

  project = var.project_id
  role    = "roles/cloudtrace.agent"
  member  = module.service_account[each.key].member
}

# Vertex AI: a deployment given AGENTS_NARRATIVE_MODEL (agents-worker, in
# environment_overrides) asks Gemini for an investigation's narrative (decision 0050); only
# then is it granted, and the API enabled. Vertex AI has no per-model IAM.
locals {
  vertex_ai_users = toset([
    for n in keys(module.manifests.deployments) : n
    if lookup(lookup(var.environment_overrides, n, {}), "AGENTS_NARRATIVE_MODEL", "") != ""
  ])
}

resource "google_project_iam_member" "vertex_ai_user" {
  for_each = local.vertex_ai_users

  project = var.project_id
  role    = "roles/aiplatform.user"
  member  = module.service_account[each.key].member
}

# Cloud Build runs the migrations through the Cloud SQL connector.
resource "google_project_iam_member" "ci_sql_client" {
  count = var.ci_service_account == "" ? 0 : 1

  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = "serviceAccount:${var.ci_service_account}"
}
