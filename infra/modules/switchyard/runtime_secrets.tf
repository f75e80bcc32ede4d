# Secrets the code creates at run time through shared.secrets (decision 0030): automation's
# credentials, source's per-repository webhook secrets, and source's GitHub token. Their names
# are not known when Terraform runs, so each deployment gets one IAM binding per shared.secrets
# operation it performs, on the project, narrowed by an IAM condition on the secret's resource
# name (projects/<number>/secrets/<id>[/versions/<v>]): a prefix for the families, the exact
# name (and its versions) for a single secret.
#
# The manifests have no key for this (shared.manifests refuses unknown keys), so the table is
# here, keyed by deployment name: the one place in Terraform that names deployments
# (tests/infra/test_context_infra.py checks every key against the manifests and every prefix
# against the names the contexts build).

locals {
  # shared.secrets operation -> the Secret Manager permissions its REST call needs, no more.
  secret_operations = {
    put      = ["secretmanager.secrets.create", "secretmanager.versions.add"] # POST secrets + :addVersion
    get      = ["secretmanager.versions.access"]                              # GET versions/<v>:access
    versions = ["secretmanager.versions.list"]                                # GET versions
    delete   = ["secretmanager.secrets.delete"]                               # DELETE secrets/<id>
    exists   = ["secretmanager.secrets.get"]                                  # GET secrets/<id>
  }

  # deployment -> what it may do on which names. match: "prefix" (every secret whose id starts
  # with name) or "exact" (that one secret).
  runtime_secrets = {
    "automation-api" = [
      { name = "automation-credential-", match = "prefix", operations = ["put", "get", "versions", "delete"] },
    ]
    "automation-runner" = [
      { name = "automation-credential-", match = "prefix", operations = ["get"] },
    ]
    "source-api" = [
      { name = "source-webhook-", match = "prefix", operations = ["put", "delete"] },
      { name = "github-token", match = "exact", operations = ["exists", "get"] }, # monitor run once
    ]
    "source-webhook" = [
      { name = "source-webhook-", match = "prefix", operations = ["get"] },
    ]
    "source-monitor" = [
      { name = "github-token", match = "exact", operations = ["exists", "get"] },
    ]
  }

  secrets_root = "projects/${data.google_project.this.number}/secrets/"

  runtime_secret_grants = {
    for g in flatten([
      for n, grants in local.runtime_secrets : [
        for s in grants : [
          for op in s.operations : {
            deployment = n
            name       = s.name
            match      = s.match
            operation  = op
            expression = (s.match == "prefix"
              ? "resource.name.startsWith(\"${local.secrets_root}${s.name}\")"
            : "resource.name == \"${local.secrets_root}${s.name}\" || resource.name.startsWith(\"${local.secrets_root}${s.name}/\")")
          }
        ]
      ]
    ]) : "${g.deployment}/${g.name}${g.match == "prefix" ? "*" : ""}/${g.operation}" => g
  }

  # Single runtime secrets get their (empty) container from Terraform; the operator adds the
  # value (docs/deploy.md). Prefix families are created by the code.
  runtime_secret_ids = sort(distinct(flatten([
    for grants in values(local.runtime_secrets) : [for s in grants : s.name if s.match == "exact"]
  ])))
}

# One custom role per shared.secrets operation (roles/secretmanager.admin would add
# setIamPolicy, update, list and the version state changes).
resource "google_project_iam_custom_role" "secret_operation" {
  for_each = local.secret_operations

  project     = var.project_id
  role_id     = "switchyardSecret${title(each.key)}"
  title       = "Switchyard secret ${each.key}"
  description = "What shared.secrets.${each.key} needs; granted only with a condition on the secret name."
  permissions = each.value
}

resource "google_project_iam_member" "runtime_secret" {
  for_each = local.runtime_secret_grants

  project = var.project_id
  role    = google_project_iam_custom_role.secret_operation[each.value.operation].name
  member  = module.service_account[each.value.deployment].member

  condition {
    title       = substr("secrets ${each.value.operation} ${each.value.name}${each.value.match == "prefix" ? "*" : ""}", 0, 100)
    description = "shared.secrets.${each.value.operation} on runtime-created secrets (decision 0030)."
    expression  = each.value.expression
  }
}
