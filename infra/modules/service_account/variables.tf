variable "project_id" {
  type        = string
  description = "Project that owns the service account."
}

variable "account_id" {
  type        = string
  description = "Account id (6-30 characters: lowercase letters, digits, hyphens)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.account_id))
    error_message = "account_id must be 6-30 characters of [a-z0-9-], starting with a letter."
  }
}

variable "display_name" {
  type        = string
  description = "Human-readable name shown in the console."
}

variable "description" {
  type        = string
  description = "What the account runs (truncated to 256 characters)."
  default     = ""
}

variable "project_roles" {
  type        = list(string)
  description = "Project-level roles granted to the account (never basic roles)."
  default     = []

  validation {
    condition     = length(setintersection(var.project_roles, ["roles/editor", "roles/owner", "roles/viewer"])) == 0
    error_message = "Basic roles (editor, owner, viewer) are not granted to Switchyard service accounts."
  }
}
