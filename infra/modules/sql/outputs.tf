output "connection_name" {
  description = "Instance connection name (project:region:instance) for the Cloud SQL connector."
  value       = google_sql_database_instance.this.connection_name
}

output "instance_name" {
  description = "Instance name."
  value       = google_sql_database_instance.this.name
}

output "database_name" {
  description = "Database name."
  value       = google_sql_database.this.name
}

output "iam_users" {
  description = "IAM database user names."
  value       = sort([for u in google_sql_user.iam : u.name])
}

output "service_account_email" {
  description = "The instance's own service account (writes Cloud SQL exports to Cloud Storage)."
  value       = google_sql_database_instance.this.service_account_email_address
}
