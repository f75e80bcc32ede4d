variable "project_id" {
  type        = string
  description = "Project of the topics."
}

variable "name" {
  type        = string
  description = "Event type, which is also the topic name (e.g. user.created)."
}

variable "publishers" {
  type        = list(string)
  description = "Deployments declaring they publish this event (recorded as a label)."
  default     = []
}

variable "subscribers" {
  type        = list(string)
  description = "Deployments subscribed to this event (recorded as a label)."
  default     = []
}

variable "pubsub_service_agent" {
  type        = string
  description = "Email of the project's Pub/Sub service agent (service-<number>@gcp-sa-pubsub.iam.gserviceaccount.com)."
}

variable "dead_letter_retention" {
  type        = string
  description = "How long the --keep subscription retains dead letters (at most 604800s)."
  default     = "604800s"
}

variable "labels" {
  type        = map(string)
  description = "Labels added to the topics and the subscription."
  default     = {}
}
