output "gateway_url" {
  description = "Public URL of the gateway: the platform's one entry point."
  value       = try(module.gateway[module.manifests.gateways[0]].url, null)
}

output "function_urls" {
  description = "Deployment name -> function URL."
  value       = { for n, f in local.functions : n => f.url }
}

output "source_objects" {
  description = "Deployment name -> gs:// source zip of the deployed revision (for rollbacks)."
  value       = { for n, f in local.functions : n => f.source_object }
}

output "topic_wiring" {
  description = "Topic -> publishers, subscribers, dead-letter topic and --keep subscription."
  value       = module.manifests.topic_wiring
}

output "service_accounts" {
  description = "Deployment name -> runtime service account email."
  value       = { for n, sa in module.service_account : n => sa.email }
}

output "sql_instance_connection_name" {
  description = "INSTANCE_CONNECTION_NAME of the Cloud SQL instance."
  value       = module.sql.connection_name
}

output "sql_grants" {
  description = "Schema -> IAM database users allowed to use it (DB_GRANTS of shared.migrate)."
  value       = module.manifests.sql_grants
}
