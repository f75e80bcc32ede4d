variable "functions_dir" {
  type        = string
  description = "Directory holding <context>/function.yaml for every bounded context."
}

variable "project_id" {
  type        = string
  description = "Google Cloud project id (service account emails, GOOGLE_CLOUD_PROJECT)."
}

variable "region" {
  type        = string
  description = "Region of the functions (deterministic service URLs)."
  default     = ""
}

variable "project_number" {
  type        = string
  description = "Project number (deterministic service URLs); empty gives non-gateway deployments no SERVICE_URLS."
  default     = ""
}

variable "env" {
  type        = string
  description = "SWITCHYARD_ENV of the deployed functions: dev or prod."
}

variable "sql_connection_name" {
  type        = string
  description = "Cloud SQL instance connection name (project:region:instance) given to deployments that use sql."
  default     = ""
}

variable "database_name" {
  type        = string
  description = "PostgreSQL database of the platform (DB_NAME)."
  default     = "switchyard"
}

variable "gateway_context" {
  type        = string
  description = "Context whose deployments route to every other deployment (all their URLs, run.invoker on each)."
  default     = "gateway"
}

variable "firestore_database" {
  type        = string
  description = "Firestore database the deployments use (their IAM condition names it)."
  default     = "(default)"
}
