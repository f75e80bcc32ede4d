# One event type: its topic, its "<topic>.dead-letter" topic and the "--keep" pull subscription
# that holds dead letters for inspection and redrive. Push subscriptions of the consumers are
# made by the caller (they need the consumers' URLs).

terraform {
  required_providers {
    google = {
      source = "hashicorp/google"
    }
  }
}

locals {
  # Label values allow [a-z0-9_-] and 63 characters; deployment names are kebab-case, so "_"
  # separates them unambiguously. The full lists are in the topic_wiring output.
  wiring_labels = {
    publishers  = substr(join("_", var.publishers), 0, 63)
    subscribers = substr(join("_", var.subscribers), 0, 63)
  }
}

resource "google_pubsub_topic" "this" {
  project = var.project_id
  name    = var.name
  labels  = merge(var.labels, local.wiring_labels)
}

resource "google_pubsub_topic" "dead_letter" {
  project = var.project_id
  name    = "${var.name}.dead-letter"
  labels  = merge(var.labels, { dead-letter-of = substr(replace(var.name, ".", "_"), 0, 63) })
}

resource "google_pubsub_subscription" "keep" {
  project                    = var.project_id
  name                       = "${var.name}.dead-letter--keep"
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = var.dead_letter_retention
  labels                     = var.labels

  expiration_policy {
    ttl = "" # never expires, even when nobody pulls for a while
  }
}

# Pub/Sub forwards undeliverable messages as its service agent.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${var.pubsub_service_agent}"
}
