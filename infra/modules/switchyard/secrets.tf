# Secret containers: the platform's (JWT keys, bootstrap admin password, GitHub webhook secret,
# migrator password), any secret a manifest mounts, and the single secrets the code reads at
# run time (runtime_secrets.tf). Access follows the manifests' secrets lists (runtime access:
# runtime_secrets.tf); the values are added by the operator (docs/deploy.md).

module "secrets" {
  source = "../secrets"

  project_id = var.project_id
  secret_ids = sort(distinct(concat(var.platform_secrets, [var.migrator_secret], module.manifests.secrets, local.runtime_secret_ids)))
  labels     = local.labels
  accessors = merge(
    {
      for k, b in module.manifests.secret_bindings : k => {
        secret = b.secret
        member = module.service_account[b.deployment].member
      }
    },
    var.ci_service_account == "" ? {} : {
      "@ci/${var.migrator_secret}" = {
        secret = var.migrator_secret
        member = "serviceAccount:${var.ci_service_account}"
      }
    },
  )

  depends_on = [google_project_service.enabled]
}
