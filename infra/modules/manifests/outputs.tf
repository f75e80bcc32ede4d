output "deployments" {
  description = "Every deployment, keyed by name, with the manifest defaults applied."
  value       = local.deployments
}

output "topics" {
  description = "Every published event type (one Pub/Sub topic each), sorted."
  value       = local.topics
}

output "topic_wiring" {
  description = "Per topic: publishers, subscribers, dead-letter topic and its --keep subscription."
  value       = local.topic_wiring
}

output "subscriptions" {
  description = "Push subscriptions keyed <deployment>--<topic>, with retry and dead-letter settings."
  value       = local.subscriptions
}

output "schedules" {
  description = "Cloud Scheduler jobs keyed by schedule deployment."
  value       = local.schedules
}

output "http_deployments" {
  description = "Names of the http deployments."
  value       = local.http_deployments
}

output "event_deployments" {
  description = "Names of the event deployments."
  value       = local.event_deployments
}

output "gateways" {
  description = "Deployments of the gateway context (they receive SERVICE_URLS)."
  value       = local.gateways
}

output "account_ids" {
  description = "Service account id of each deployment."
  value       = { for n, d in local.deployments : n => d.account_id }
}

output "db_users" {
  description = "Cloud SQL IAM database user of each deployment."
  value       = local.db_user
}

output "project_roles" {
  description = "Project-level roles of each deployment's service account."
  value       = local.project_roles
}

output "publisher_bindings" {
  description = "roles/pubsub.publisher grants keyed <deployment>/<topic>."
  value       = local.publisher_bindings

  precondition {
    condition     = length(local.invalid_platform_roles) == 0
    error_message = "A manifest `platform_roles` entry is not outbox-relay, outbox-operator, outbox-purger or dead-letter-operator: ${join(", ", local.invalid_platform_roles)}."
  }
}

output "platform_roles" {
  description = "Platform role -> deployments that declare it in their manifest (`platform_roles`)."
  value = {
    "outbox-relay"         = local.relays
    "outbox-operator"      = sort([for n, d in local.deployments : n if contains(d.platform_roles, "outbox-operator")])
    "outbox-purger"        = sort([for n, d in local.deployments : n if contains(d.platform_roles, "outbox-purger")])
    "dead-letter-operator" = local.operators
  }
}

output "dead_letter_bindings" {
  description = "roles/pubsub.subscriber grants on dead-letter --keep subscriptions keyed <deployment>/<topic>."
  value       = local.dead_letter_bindings
}

output "secrets" {
  description = "Secret Manager secret ids referenced by some manifest."
  value       = local.secrets
}

output "secret_bindings" {
  description = "roles/secretmanager.secretAccessor grants keyed <deployment>/<secret>."
  value       = local.secret_bindings
}

output "invoker_bindings" {
  description = "roles/run.invoker grants keyed <target>/<invoker>; invoker is a deployment, @push or @scheduler."
  value       = local.invoker_bindings

  precondition {
    condition     = length(local.invalid_calls) == 0
    error_message = "A manifest `calls` entry is not another http deployment: ${join(", ", local.invalid_calls)}."
  }
}

output "environment" {
  description = "Plain environment variables of each deployment (SERVICE_URLS only of those that call others; the gateways' is added by modules/switchyard)."
  value       = local.environment
}

output "secret_environment" {
  description = "Secret environment variables of each deployment: variable name -> secret id."
  value       = local.secret_environment
}

output "sql_grants" {
  description = "Schema -> IAM database users that may use it (DB_GRANTS for shared.migrate)."
  value       = local.sql_grants
}

output "service_urls" {
  description = "SERVICE_URLS of each non-gateway deployment that calls others: the deterministic run.app URL of each http deployment in its manifest `calls`."
  value       = local.service_urls
}

output "health_viewer_bindings" {
  description = "roles/run.viewer grants keyed <target>/<gateway>: the gateways read the state of the event and schedule deployments they may not invoke."
  value       = local.health_viewer_bindings
}

output "firestore_bindings" {
  description = "Deployment -> its Firestore role and the IAM condition naming the database it may use."
  value       = local.firestore_bindings
}

output "outbox_privileges" {
  description = "Deployment -> PostgreSQL privileges on every <schema>.outbox, from its outbox platform roles."
  value       = local.outbox_privileges
}
