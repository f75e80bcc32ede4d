# The whole platform of one environment. infra/environments/<env> configure the provider and
# the backend and call this module with that environment's sizes; everything per deployment
# comes from the manifests (module.manifests), so adding a deployment or a context needs no
# Terraform edit.

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 7.0"
    }
  }
}
