variable "project_id" {
  type        = string
  description = "Project of the job."
}

variable "region" {
  type        = string
  description = "Cloud Scheduler location."
}

variable "name" {
  type        = string
  description = "Job name: the schedule deployment's name."
}

variable "description" {
  type        = string
  description = "Description of the job."
  default     = ""
}

variable "schedule" {
  type        = string
  description = "Five-field cron expression from the manifest."
}

variable "time_zone" {
  type        = string
  description = "IANA time zone of the schedule."
  default     = "Etc/UTC"
}

variable "uri" {
  type        = string
  description = "URL the job POSTs to (the function URL)."
}

variable "audience" {
  type        = string
  description = "OIDC audience: the function URL."
}

variable "service_account_email" {
  type        = string
  description = "Invoker service account whose OIDC token the job sends."
}

variable "attempt_deadline_s" {
  type        = number
  description = "Seconds the job waits for a response (15..1800)."
  default     = 60
}

variable "paused" {
  type        = bool
  description = "Create the job paused."
  default     = false
}
