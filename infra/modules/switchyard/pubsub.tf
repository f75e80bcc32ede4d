# One topic per event type (with its dead-letter topic), one push subscription per
# (event deployment, subscribed topic). Switchyard owns these subscriptions instead of using
# Eventarc triggers: see docs/decisions/0002-owned-push-subscriptions.md. Each topic is
# labelled with its publishers and subscribers; `terraform output topic_wiring` lists them.

module "topic" {
  source   = "../event_topic"
  for_each = module.manifests.topic_wiring

  project_id           = var.project_id
  name                 = each.key
  publishers           = each.value.publishers
  subscribers          = each.value.subscribers
  pubsub_service_agent = local.pubsub_service_agent
  labels               = local.labels

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_subscription" "push" {
  for_each = module.manifests.subscriptions

  project                    = var.project_id
  name                       = each.key
  topic                      = module.topic[each.value.topic].id
  ack_deadline_seconds       = each.value.ack_deadline_s
  message_retention_duration = "604800s"
  labels                     = merge(local.labels, { deployment = each.value.deployment })

  push_config {
    # The path names the topic so the CloudEvent built from the push body says where it came
    # from (functions-framework drops the subscription name).
    push_endpoint = "${local.functions[each.value.deployment].url}/projects/${var.project_id}/topics/${each.value.topic}"

    oidc_token {
      service_account_email = module.push_invoker.email
      audience              = local.functions[each.value.deployment].url
    }
  }

  retry_policy {
    minimum_backoff = "${each.value.min_backoff_s}s"
    maximum_backoff = "${each.value.max_backoff_s}s"
  }

  dead_letter_policy {
    dead_letter_topic     = module.topic[each.value.topic].dead_letter_id
    max_delivery_attempts = each.value.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_cloud_run_v2_service_iam_member.invoker]
}

# Dead-lettering needs the Pub/Sub service agent to subscribe to the source subscription (and
# to publish to the dead-letter topic: module.topic).
resource "google_pubsub_subscription_iam_member" "service_agent" {
  for_each = module.manifests.subscriptions

  project      = var.project_id
  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${local.pubsub_service_agent}"
}

# Each deployment publishes only its declared topics (the outbox relay: every topic).
resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = module.manifests.publisher_bindings

  project = var.project_id
  topic   = module.topic[each.value.topic].name
  role    = "roles/pubsub.publisher"
  member  = module.service_account[each.value.deployment].member
}

# The dead-letter operator (ops-api) reads the --keep subscriptions to list and redrive.
resource "google_pubsub_subscription_iam_member" "dead_letter_reader" {
  for_each = module.manifests.dead_letter_bindings

  project      = var.project_id
  subscription = module.topic[each.value.topic].keep_subscription
  role         = "roles/pubsub.subscriber"
  member       = module.service_account[each.value.deployment].member
}
