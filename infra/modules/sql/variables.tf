variable "project_id" {
  type        = string
  description = "Project of the instance."
}

variable "region" {
  type        = string
  description = "Region of the instance."
}

variable "instance_name" {
  type        = string
  description = "Cloud SQL instance name."
}

variable "database_name" {
  type        = string
  description = "The platform's database."
  default     = "switchyard"
}

variable "tier" {
  type        = string
  description = "Machine tier, e.g. db-g1-small (dev) or db-custom-2-7680 (prod)."
}

variable "availability_type" {
  type        = string
  description = "ZONAL or REGIONAL (high availability)."
  default     = "ZONAL"

  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.availability_type)
    error_message = "availability_type must be ZONAL or REGIONAL."
  }
}

variable "disk_size_gb" {
  type        = number
  description = "Initial disk size in GB (grows automatically)."
  default     = 10
}

variable "max_connections" {
  type        = number
  description = "PostgreSQL max_connections; must cover max instances x pool size of every sql deployment."
  default     = 200
}

variable "retained_backups" {
  type        = number
  description = "Number of daily backups kept."
  default     = 14
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the instance (Terraform and API). True in prod."
}

variable "iam_service_accounts" {
  type        = map(string)
  description = "Service accounts that get an IAM database user: key (the deployment, known at plan time) -> email."
  default     = {}
}

variable "labels" {
  type        = map(string)
  description = "Labels of the instance."
  default     = {}
}
