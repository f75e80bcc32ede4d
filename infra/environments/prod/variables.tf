variable "project_id" {
  type        = string
  description = "Google Cloud project of the prod environment."
}

variable "region" {
  type        = string
  description = "Region of the functions, Cloud SQL, Cloud Scheduler and the source bucket."
  default     = "europe-west1"
}

variable "sql_tier" {
  type        = string
  description = "Cloud SQL machine tier of prod."
  default     = "db-custom-2-7680"
}

variable "sql_max_connections" {
  type        = number
  description = "PostgreSQL max_connections of prod: 400, Cloud SQL's default for the 7.5 GB of db-custom-2-7680; the manifests' pools fit it (decision 0040)."
  default     = 400
}

variable "firestore_location" {
  type        = string
  description = "Firestore location; empty means the region."
  default     = ""
}

variable "ci_service_account" {
  type        = string
  description = "Email of the service account Cloud Build runs as (reads the migrator password, connects to Cloud SQL); empty for none."
  default     = ""
}

variable "environment_overrides" {
  type        = map(map(string))
  description = "Extra environment variables per deployment in prod, e.g. { gateway = { CORS_ORIGINS = \"https://console.example.com\" } }."
  default     = {}
}
