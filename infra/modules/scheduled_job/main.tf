# One Cloud Scheduler job calling a schedule deployment with an OIDC token, as the local
# scheduler of `make dev` does (POST, JSON body).

terraform {
  required_providers {
    google = {
      source = "hashicorp/google"
    }
  }
}

resource "google_cloud_scheduler_job" "this" {
  project          = var.project_id
  region           = var.region
  name             = var.name
  description      = var.description
  schedule         = var.schedule
  time_zone        = var.time_zone
  attempt_deadline = "${var.attempt_deadline_s}s"
  paused           = var.paused

  retry_config {
    retry_count = 0 # the next tick is the retry
  }

  http_target {
    http_method = "POST"
    uri         = var.uri
    body        = base64encode("{}")
    headers     = { "Content-Type" = "application/json" }

    oidc_token {
      service_account_email = var.service_account_email
      audience              = var.audience
    }
  }
}
