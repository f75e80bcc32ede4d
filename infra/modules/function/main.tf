# One Cloud Run function (gen2) built from a zip produced by `make package`
# (build/<deployment>.zip). Every function takes HTTP, event deployments included: they receive
# Pub/Sub push bodies (see docs/decisions/0002-owned-push-subscriptions.md). Ingress is internal
# unless the manifest says `ingress: all`, which also grants allUsers the invoker role. Egress
# goes through the VPC connector when one is given (modules/network explains why).

terraform {
  required_providers {
    google = {
      source = "hashicorp/google"
    }
  }
}

locals {
  # The object name carries the content hash, so a changed package deploys a new revision and
  # the previous object stays in the (versioned) bucket for rollbacks.
  source_object = "${var.name}/${try(filemd5(var.source_zip), "missing")}.zip"
}

resource "google_storage_bucket_object" "source" {
  bucket = var.source_bucket
  name   = local.source_object
  source = var.source_zip

  lifecycle {
    precondition {
      condition     = fileexists(var.source_zip)
      error_message = "${var.source_zip} does not exist: run `make package` before plan/apply."
    }
  }
}

resource "google_cloudfunctions2_function" "this" {
  project     = var.project_id
  location    = var.region
  name        = var.name
  description = var.description
  labels      = var.labels

  build_config {
    runtime         = var.python_runtime
    entry_point     = var.entry_point
    service_account = var.build_service_account

    source {
      storage_source {
        bucket = google_storage_bucket_object.source.bucket
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = var.runtime.memory
    available_cpu                    = tostring(var.runtime.cpu)
    timeout_seconds                  = var.runtime.timeout_s
    min_instance_count               = var.runtime.min_instances
    max_instance_count               = var.runtime.max_instances
    max_instance_request_concurrency = var.runtime.concurrency
    ingress_settings                 = var.ingress == "all" ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = var.service_account_email
    environment_variables            = var.environment
    # All egress through the VPC: calls to other (internal-only) functions count as internal.
    vpc_connector                 = var.vpc_connector == "" ? null : var.vpc_connector
    vpc_connector_egress_settings = var.vpc_connector == "" ? null : "ALL_TRAFFIC"

    dynamic "secret_environment_variables" {
      for_each = var.secret_environment
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }
}

# Public deployments (the gateway, later the GitHub webhook) authenticate their callers
# themselves; everything else is reached only with an ID token of an invoker service account.
resource "google_cloud_run_v2_service_iam_member" "public" {
  count = var.ingress == "all" ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
