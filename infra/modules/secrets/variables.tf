variable "project_id" {
  type        = string
  description = "Project of the secrets."
}

variable "secret_ids" {
  type        = list(string)
  description = "Secret ids to create (containers without a value)."
}

variable "accessors" {
  type = map(object({
    secret = string
    member = string
  }))
  description = "secretAccessor grants: key -> {secret id, IAM member}. Each secret must be in secret_ids."
  default     = {}
}

variable "labels" {
  type        = map(string)
  description = "Labels of the secrets."
  default     = {}
}
