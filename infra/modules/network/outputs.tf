output "connector_id" {
  description = "Fully qualified id of the Serverless VPC Access connector (projects/<p>/locations/<r>/connectors/<name>)."
  value       = google_vpc_access_connector.this.id
}

output "network" {
  description = "Self link of the VPC network."
  value       = google_compute_network.this.self_link
}
