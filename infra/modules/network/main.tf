# Private egress of the functions. Ingress of every deployment but the gateway (and later the
# webhook) is internal-only, and Cloud Run treats a call from another function as internal
# only when it leaves through a VPC network. So every function sends all its egress through a
# Serverless VPC Access connector (the gen2 function API offers no Direct VPC egress); Private
# Google Access lets that traffic reach Google APIs and *.run.app, Cloud NAT the rest (the
# Cloud SQL connector's public IP, GitHub, user-configured webhooks).

terraform {
  required_providers {
    google = {
      source = "hashicorp/google"
    }
  }
}

resource "google_compute_network" "this" {
  project                 = var.project_id
  name                    = var.name
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"
}

# The connector's own /28: its instances live here.
resource "google_compute_subnetwork" "connector" {
  project                  = var.project_id
  region                   = var.region
  name                     = "${var.name}-connector"
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.connector_cidr
  private_ip_google_access = true
}

resource "google_vpc_access_connector" "this" {
  project       = var.project_id
  region        = var.region
  name          = var.name
  machine_type  = var.connector_machine_type
  min_instances = var.connector_min_instances
  max_instances = var.connector_max_instances

  subnet {
    name = google_compute_subnetwork.connector.name
  }
}

resource "google_compute_router" "this" {
  project = var.project_id
  region  = var.region
  name    = var.name
  network = google_compute_network.this.id
}

resource "google_compute_router_nat" "this" {
  project                            = var.project_id
  region                             = var.region
  name                               = var.name
  router                             = google_compute_router.this.name
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}
