terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }

  # The bucket is given at init time (partial configuration), so one file serves every project:
  #   terraform init -backend-config=bucket=<state bucket>
  backend "gcs" {
    prefix = "switchyard/dev"
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
