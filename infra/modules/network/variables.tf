variable "project_id" {
  type        = string
  description = "Project of the network."
}

variable "region" {
  type        = string
  description = "Region of the subnet, connector and NAT (the functions' region)."
}

variable "name" {
  type        = string
  description = "Name of the network, connector, router and NAT (connector names: at most 25 characters)."
  default     = "switchyard"
}

variable "connector_cidr" {
  type        = string
  description = "Unused /28 range for the connector's subnet."
  default     = "10.8.0.0/28"
}

variable "connector_machine_type" {
  type        = string
  description = "Machine type of the connector instances (f1-micro, e2-micro, e2-standard-4)."
  default     = "e2-micro"
}

variable "connector_min_instances" {
  type        = number
  description = "Minimum connector instances (at least 2)."
  default     = 2
}

variable "connector_max_instances" {
  type        = number
  description = "Maximum connector instances (throughput grows with them; at most 10)."
  default     = 3
}
