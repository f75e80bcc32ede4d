output "name" {
  description = "Function (and Cloud Run service) name."
  value       = google_cloudfunctions2_function.this.name
}

output "url" {
  description = "HTTPS URL of the underlying Cloud Run service (push endpoint and OIDC audience)."
  value       = google_cloudfunctions2_function.this.service_config[0].uri
}

output "source_object" {
  description = "gs:// path of the source zip this revision was built from (for rollbacks)."
  value       = "gs://${google_storage_bucket_object.source.bucket}/${google_storage_bucket_object.source.name}"
}
