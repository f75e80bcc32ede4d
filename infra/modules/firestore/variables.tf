variable "project_id" {
  type        = string
  description = "Project of the database."
}

variable "location_id" {
  type        = string
  description = "Firestore location (a region such as europe-west1, or a multi-region such as eur3)."
}

variable "delete_protection" {
  type        = bool
  description = "Protect the database from deletion (and abandon it on terraform destroy). True in prod."
}

variable "point_in_time_recovery" {
  type        = bool
  description = "Keep 7 days of point-in-time recovery."
  default     = true
}

variable "ttl_fields" {
  type = list(object({
    collection = string
    field      = string
  }))
  description = "Collection fields holding a timestamp after which the document is deleted."
  default     = []
}

variable "indexes" {
  type = list(object({
    collection = string
    fields = list(object({
      field_path = string
      order      = string
    }))
  }))
  description = "Composite indexes; order is ASCENDING or DESCENDING."
  default     = []
}
