output "email" {
  description = "Email of the service account."
  value       = google_service_account.this.email
}

output "id" {
  description = "Fully qualified id (projects/<p>/serviceAccounts/<email>)."
  value       = google_service_account.this.id
}

output "member" {
  description = "IAM member string: serviceAccount:<email>."
  value       = google_service_account.this.member
}
