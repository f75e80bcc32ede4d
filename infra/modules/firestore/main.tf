# The (default) Firestore database in native mode, its TTL policies and composite indexes.
# Collections are created by the code; only what Firestore cannot infer is declared here.

terraform {
  required_providers {
    google = {
      source = "hashicorp/google"
    }
  }
}

resource "google_firestore_database" "this" {
  project                           = var.project_id
  name                              = "(default)"
  location_id                       = var.location_id
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = var.point_in_time_recovery ? "POINT_IN_TIME_RECOVERY_ENABLED" : "POINT_IN_TIME_RECOVERY_DISABLED"
  delete_protection_state           = var.delete_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = var.delete_protection ? "ABANDON" : "DELETE"
}

# Documents are deleted (within about a day) once the timestamp in the field has passed.
resource "google_firestore_field" "ttl" {
  for_each = { for f in var.ttl_fields : "${f.collection}.${f.field}" => f }

  project    = var.project_id
  database   = google_firestore_database.this.name
  collection = each.value.collection
  field      = each.value.field

  ttl_config {}

  # No single-field index on a TTL timestamp: it only ever grows and is never queried.
  index_config {}
}

resource "google_firestore_index" "composite" {
  for_each = { for i in var.indexes : "${i.collection}:${join(",", [for f in i.fields : "${f.field_path}-${f.order}"])}" => i }

  project     = var.project_id
  database    = google_firestore_database.this.name
  collection  = each.value.collection
  query_scope = "COLLECTION"

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path = fields.value.field_path
      order      = fields.value.order
    }
  }
}
