output "id" {
  description = "Topic id (projects/<p>/topics/<name>)."
  value       = google_pubsub_topic.this.id
}

output "name" {
  description = "Topic name."
  value       = google_pubsub_topic.this.name
}

output "dead_letter_id" {
  description = "Dead-letter topic id."
  value       = google_pubsub_topic.dead_letter.id
}

output "keep_subscription" {
  description = "Name of the pull subscription that keeps the dead letters."
  value       = google_pubsub_subscription.keep.name
}
