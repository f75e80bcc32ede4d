# Database backups (ops-api: POST /api/ops/database/backup, docs/decisions/0016): a Cloud SQL
# export of the database to this bucket through the SQL Admin API. Only ops-api may start one:
# a custom role with exactly cloudsql.instances.export (start it) and cloudsql.instances.get
# (read its operation), and objectCreator on this bucket only. The export file itself is
# written by the Cloud SQL instance's own service account, which gets objectCreator here too.
# ops-api finds the bucket by this name (<project>-switchyard-backups) unless BACKUP_BUCKET says
# otherwise.

locals {
  # The deployments that back the database up. (A platform role in the manifests, like the
  # outbox operators', would move this name there; shared.manifests has none for it yet.)
  backup_operators = toset([for n in ["ops-api"] : n if contains(keys(module.manifests.deployments), n)])
}

resource "google_storage_bucket" "backups" {
  project                     = var.project_id
  name                        = "${var.project_id}-switchyard-backups"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
  labels                      = local.labels

  lifecycle_rule {
    condition {
      age = var.backup_retention_days
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_project_iam_custom_role" "sql_exporter" {
  project     = var.project_id
  role_id     = "switchyardSqlExporter"
  title       = "Switchyard Cloud SQL exporter"
  description = "Start a Cloud SQL export and read its operation (ops-api database backups)."
  permissions = ["cloudsql.instances.export", "cloudsql.instances.get"]
}

resource "google_project_iam_member" "sql_exporter" {
  for_each = local.backup_operators

  project = var.project_id
  role    = google_project_iam_custom_role.sql_exporter.name
  member  = module.service_account[each.key].member
}

resource "google_storage_bucket_iam_member" "backup_creator" {
  for_each = local.backup_operators

  bucket = google_storage_bucket.backups.name
  role   = "roles/storage.objectCreator"
  member = module.service_account[each.key].member
}

resource "google_storage_bucket_iam_member" "sql_instance_backup_writer" {
  bucket = google_storage_bucket.backups.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${module.sql.service_account_email}"
}
