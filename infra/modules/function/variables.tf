variable "project_id" {
  type        = string
  description = "Project of the function."
}

variable "region" {
  type        = string
  description = "Region of the function."
}

variable "name" {
  type        = string
  description = "Deployment name from the manifest; also the Cloud Run service name."
}

variable "description" {
  type        = string
  description = "Description from the manifest."
  default     = ""
}

variable "entry_point" {
  type        = string
  description = "Function in main.py that serves requests."
}

variable "python_runtime" {
  type        = string
  description = "Cloud Run functions runtime id."
  default     = "python312"
}

variable "source_bucket" {
  type        = string
  description = "Bucket holding the function source zips."
}

variable "source_zip" {
  type        = string
  description = "Local path of build/<deployment>.zip produced by `make package`."
}

variable "build_service_account" {
  type        = string
  description = "Fully qualified service account id Cloud Build uses to build the function."
}

variable "service_account_email" {
  type        = string
  description = "Runtime service account of the function (one per deployment)."
}

variable "runtime" {
  type = object({
    memory        = string
    cpu           = number
    timeout_s     = number
    min_instances = number
    max_instances = number
    concurrency   = number
  })
  description = "Instance size and scaling from the manifest's runtime block."
}

variable "ingress" {
  type        = string
  description = "internal (ALLOW_INTERNAL_ONLY, invoker IAM) or all (ALLOW_ALL, public invoker)."
  default     = "internal"

  validation {
    condition     = contains(["internal", "all"], var.ingress)
    error_message = "ingress must be internal or all."
  }
}

variable "environment" {
  type        = map(string)
  description = "Plain environment variables."
  default     = {}
}

variable "secret_environment" {
  type        = map(string)
  description = "Environment variable name -> Secret Manager secret id (latest version)."
  default     = {}
}

variable "vpc_connector" {
  type        = string
  description = "Serverless VPC Access connector id for all egress; empty for none."
  default     = ""
}

variable "labels" {
  type        = map(string)
  description = "Labels of the function."
  default     = {}
}
