output "database" {
  description = "Database name."
  value       = google_firestore_database.this.name
}
