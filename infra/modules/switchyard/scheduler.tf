# One Cloud Scheduler job per schedule deployment, POSTing with an OIDC token.
module "scheduled_job" {
  source   = "../scheduled_job"
  for_each = module.manifests.schedules

  project_id            = var.project_id
  region                = var.region
  name                  = each.key
  description           = module.manifests.deployments[each.key].description
  schedule              = each.value.schedule
  time_zone             = each.value.time_zone
  attempt_deadline_s    = each.value.attempt_deadline_s
  uri                   = local.functions[each.key].url
  audience              = local.functions[each.key].url
  service_account_email = module.scheduler_invoker.email

  depends_on = [google_project_service.enabled, google_cloud_run_v2_service_iam_member.invoker]
}
