variable "project_id" {
  type        = string
  description = "Google Cloud project of the dev environment."
}

variable "region" {
  type        = string
  description = "Region of the functions, Cloud SQL, Cloud Scheduler and the source bucket."
  default     = "europe-west1"
}

variable "sql_tier" {
  type        = string
  description = "Cloud SQL machine tier of dev."
  default     = "db-g1-small"
}

variable "sql_max_connections" {
  type        = number
  description = "PostgreSQL max_connections of dev."
  default     = 200
}

variable "max_instances_cap" {
  type        = number
  description = "Ceiling on every deployment's max_instances in dev (the manifests size prod); with db-g1-small's connections in mind (decision 0040)."
  default     = 3
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
  description = "Extra environment variables per deployment in dev, e.g. { gateway = { CORS_ORIGINS = \"https://console.example.com\" } }."
  default     = {}
}
