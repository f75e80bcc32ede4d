# All function egress leaves through one VPC connector, so that calls between functions reach
# the internal-only ones (see modules/network).
module "network" {
  source = "../network"

  project_id              = var.project_id
  region                  = var.region
  name                    = "switchyard"
  connector_cidr          = var.connector_cidr
  connector_max_instances = var.connector_max_instances

  depends_on = [google_project_service.enabled]
}
