output "ids" {
  description = "Secret id -> fully qualified secret name."
  value       = { for k, s in google_secret_manager_secret.this : k => s.id }
}
