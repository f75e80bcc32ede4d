# One Cloud Run function per deployment. The gateways are created after the others because
# their SERVICE_URLS holds the URL of every other deployment (their own URL is not needed).

resource "google_storage_bucket" "sources" {
  project                     = var.project_id
  name                        = "${var.project_id}-switchyard-sources"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
  labels                      = local.labels

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = var.source_retention_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

locals {
  # The manifest's runtime, with the environment's ceiling on instances (dev: a few).
  runtime = {
    for n, d in module.manifests.deployments : n => merge(d.runtime, {
      max_instances = var.max_instances_cap == null ? d.runtime.max_instances : min(d.runtime.max_instances, var.max_instances_cap)
    })
  }

  backends = { for n, d in module.manifests.deployments : n => d if !contains(module.manifests.gateways, n) }
  gateways = { for n, d in module.manifests.deployments : n => d if contains(module.manifests.gateways, n) }

  # Every other deployment: the gateways route to the http ones and probe all for /api/health.
  service_urls = jsonencode({ for n, f in module.function : n => f.url })

  functions = merge(module.function, module.gateway)
}

module "function" {
  source   = "../function"
  for_each = local.backends

  project_id            = var.project_id
  region                = var.region
  name                  = each.key
  description           = each.value.description
  entry_point           = each.value.entry_point
  runtime               = local.runtime[each.key]
  ingress               = each.value.ingress
  source_bucket         = google_storage_bucket.sources.name
  source_zip            = "${var.build_dir}/${each.key}.zip"
  build_service_account = module.builder.id
  service_account_email = module.service_account[each.key].email
  vpc_connector         = module.network.connector_id
  environment           = merge(module.manifests.environment[each.key], lookup(var.environment_overrides, each.key, {}))
  secret_environment    = module.manifests.secret_environment[each.key]
  labels                = merge(local.labels, { context = each.value.context, trigger = each.value.trigger })

  # Secret access and project roles must exist before a revision can start.
  depends_on = [google_project_service.enabled, module.secrets, module.service_account, module.builder]
}

module "gateway" {
  source   = "../function"
  for_each = local.gateways

  project_id            = var.project_id
  region                = var.region
  name                  = each.key
  description           = each.value.description
  entry_point           = each.value.entry_point
  runtime               = local.runtime[each.key]
  ingress               = each.value.ingress
  source_bucket         = google_storage_bucket.sources.name
  source_zip            = "${var.build_dir}/${each.key}.zip"
  build_service_account = module.builder.id
  service_account_email = module.service_account[each.key].email
  vpc_connector         = module.network.connector_id
  environment = merge(
    module.manifests.environment[each.key],
    { SERVICE_URLS = local.service_urls },
    lookup(var.environment_overrides, each.key, {}),
  )
  secret_environment = module.manifests.secret_environment[each.key]
  labels             = merge(local.labels, { context = each.value.context, trigger = each.value.trigger })

  depends_on = [google_project_service.enabled, module.secrets, module.service_account, module.builder]
}
