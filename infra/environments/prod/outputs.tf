output "gateway_url" {
  description = "Public URL of the gateway."
  value       = module.switchyard.gateway_url
}

output "function_urls" {
  description = "Deployment name -> function URL."
  value       = module.switchyard.function_urls
}

output "source_objects" {
  description = "Deployment name -> gs:// source zip of the deployed revision."
  value       = module.switchyard.source_objects
}

output "topic_wiring" {
  description = "Topic -> publishers, subscribers, dead-letter topic, --keep subscription."
  value       = module.switchyard.topic_wiring
}

output "service_accounts" {
  description = "Deployment name -> runtime service account email."
  value       = module.switchyard.service_accounts
}

output "sql_instance_connection_name" {
  description = "INSTANCE_CONNECTION_NAME for migrations."
  value       = module.switchyard.sql_instance_connection_name
}

output "sql_grants" {
  description = "Schema -> IAM database users (DB_GRANTS for shared.migrate)."
  value       = module.switchyard.sql_grants
}
