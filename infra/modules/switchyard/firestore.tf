module "firestore" {
  source = "../firestore"

  project_id        = var.project_id
  location_id       = var.firestore_location == "" ? var.region : var.firestore_location
  delete_protection = var.deletion_protection
  ttl_fields        = var.firestore_ttl_fields
  indexes           = var.firestore_indexes

  depends_on = [google_project_service.enabled]
}
