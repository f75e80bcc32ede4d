variable "project_id" {
  type        = string
  description = "Google Cloud project of this environment (one project per environment)."
}

variable "region" {
  type        = string
  description = "Region of the functions, Cloud SQL, Cloud Scheduler and the source bucket."
}

variable "env" {
  type        = string
  description = "Environment name, passed to the functions as SWITCHYARD_ENV."

  validation {
    condition     = contains(["dev", "prod"], var.env)
    error_message = "env must be dev or prod."
  }
}

variable "functions_dir" {
  type        = string
  description = "Path of functions/ (the manifests functions/<context>/function.yaml)."
}

variable "build_dir" {
  type        = string
  description = "Path of build/ where `make package` writes <deployment>.zip."
}

variable "connector_cidr" {
  type        = string
  description = "Unused /28 for the Serverless VPC Access connector."
  default     = "10.8.0.0/28"
}

variable "connector_max_instances" {
  type        = number
  description = "Maximum instances of the VPC connector (3..10; egress throughput of all functions)."
  default     = 3
}

variable "deletion_protection" {
  type        = bool
  description = "Protect stateful resources (Cloud SQL, Firestore, the source bucket) from deletion."
}

variable "sql_instance_name" {
  type        = string
  description = "Cloud SQL instance name."
  default     = "switchyard"
}

variable "sql_tier" {
  type        = string
  description = "Cloud SQL machine tier."
}

variable "sql_availability_type" {
  type        = string
  description = "ZONAL or REGIONAL Cloud SQL instance."
  default     = "ZONAL"
}

variable "sql_max_connections" {
  type        = number
  description = "PostgreSQL max_connections of the instance."
  default     = 200
}

variable "sql_reserved_connections" {
  type        = number
  description = "Connections kept free of the deployments' pools for migrations, the ops tools and people (the sql_connection_budget check)."
  default     = 10
}

variable "max_instances_cap" {
  type        = number
  description = "Ceiling on every deployment's max_instances in this environment (null: the manifests' figures)."
  default     = null
  nullable    = true
}

variable "firestore_location" {
  type        = string
  description = "Firestore location; empty means the region."
  default     = ""
}

variable "firestore_ttl_fields" {
  type = list(object({
    collection = string
    field      = string
  }))
  description = "Firestore TTL policies: documents are deleted after the timestamp in collection.field."
  # A collection here is a collection group: "lines" is automation_run_logs/{run}/lines,
  # "chunks" is source_deliveries/{delivery}/chunks (decision 0030).
  default = [
    { collection = "processed", field = "expires_at" },
    { collection = "auth_revoked_tokens", field = "expires_at" },
    { collection = "auth_not_before", field = "expires_at" },
    { collection = "idempotency", field = "expires_at" },
    { collection = "agents_diffs", field = "expires_at" },
    { collection = "lines", field = "expires_at" },
    { collection = "source_deliveries", field = "expires_at" },
    { collection = "chunks", field = "expires_at" },
    { collection = "realtime_feed", field = "expires_at" },
    { collection = "realtime_applied", field = "expires_at" },
    { collection = "realtime_tickets", field = "expires_at" },
  ]
}

variable "firestore_indexes" {
  type = list(object({
    collection = string
    fields = list(object({
      field_path = string
      order      = string
    }))
  }))
  description = "Firestore composite indexes."
  default = [
    {
      collection = "audit_events"
      fields     = [{ field_path = "event_type", order = "ASCENDING" }, { field_path = "occurred_at", order = "DESCENDING" }]
    },
    {
      collection = "audit_events"
      fields     = [{ field_path = "actor", order = "ASCENDING" }, { field_path = "occurred_at", order = "DESCENDING" }]
    },
    {
      collection = "audit_events"
      fields     = [{ field_path = "source", order = "ASCENDING" }, { field_path = "occurred_at", order = "DESCENDING" }]
    },
    # functions/agents/service.py (list_investigations, interactions): every combination of
    # equality filters it issues, newest first (store.page: created_at DESC, __name__ DESC).
    {
      collection = "agents_investigations"
      fields     = [{ field_path = "kind", order = "ASCENDING" }, { field_path = "created_at", order = "DESCENDING" }]
    },
    {
      collection = "agents_investigations"
      fields     = [{ field_path = "package_id", order = "ASCENDING" }, { field_path = "created_at", order = "DESCENDING" }]
    },
    {
      collection = "agents_investigations"
      fields     = [{ field_path = "status", order = "ASCENDING" }, { field_path = "created_at", order = "DESCENDING" }]
    },
    {
      collection = "agents_investigations"
      fields     = [{ field_path = "kind", order = "ASCENDING" }, { field_path = "package_id", order = "ASCENDING" }, { field_path = "created_at", order = "DESCENDING" }]
    },
    {
      collection = "agents_investigations"
      fields     = [{ field_path = "kind", order = "ASCENDING" }, { field_path = "status", order = "ASCENDING" }, { field_path = "created_at", order = "DESCENDING" }]
    },
    {
      collection = "agents_investigations"
      fields     = [{ field_path = "package_id", order = "ASCENDING" }, { field_path = "status", order = "ASCENDING" }, { field_path = "created_at", order = "DESCENDING" }]
    },
    {
      collection = "agents_investigations"
      fields     = [{ field_path = "kind", order = "ASCENDING" }, { field_path = "package_id", order = "ASCENDING" }, { field_path = "status", order = "ASCENDING" }, { field_path = "created_at", order = "DESCENDING" }]
    },
    {
      collection = "agents_analyses"
      fields     = [{ field_path = "kind", order = "ASCENDING" }, { field_path = "created_at", order = "DESCENDING" }]
    },
    {
      collection = "agents_analyses"
      fields     = [{ field_path = "repository", order = "ASCENDING" }, { field_path = "created_at", order = "DESCENDING" }]
    },
    {
      collection = "agents_analyses"
      fields     = [{ field_path = "status", order = "ASCENDING" }, { field_path = "created_at", order = "DESCENDING" }]
    },
    {
      collection = "agents_analyses"
      fields     = [{ field_path = "kind", order = "ASCENDING" }, { field_path = "repository", order = "ASCENDING" }, { field_path = "created_at", order = "DESCENDING" }]
    },
    {
      collection = "agents_analyses"
      fields     = [{ field_path = "kind", order = "ASCENDING" }, { field_path = "status", order = "ASCENDING" }, { field_path = "created_at", order = "DESCENDING" }]
    },
    {
      collection = "agents_analyses"
      fields     = [{ field_path = "repository", order = "ASCENDING" }, { field_path = "status", order = "ASCENDING" }, { field_path = "created_at", order = "DESCENDING" }]
    },
    {
      collection = "agents_analyses"
      fields     = [{ field_path = "kind", order = "ASCENDING" }, { field_path = "repository", order = "ASCENDING" }, { field_path = "status", order = "ASCENDING" }, { field_path = "created_at", order = "DESCENDING" }]
    },
    # functions/agents/store.py latest_finished (status page) and lane_samples.
    {
      collection = "agents_investigations"
      fields     = [{ field_path = "status", order = "ASCENDING" }, { field_path = "finished_at", order = "DESCENDING" }]
    },
    {
      collection = "agents_analyses"
      fields     = [{ field_path = "status", order = "ASCENDING" }, { field_path = "finished_at", order = "DESCENDING" }]
    },
    {
      collection = "agents_lane_samples"
      fields     = [{ field_path = "lane", order = "ASCENDING" }, { field_path = "delivered_at", order = "DESCENDING" }]
    },
    # functions/realtime/store.py entries_after: stream == key, seq > after, order by seq.
    {
      collection = "realtime_feed"
      fields     = [{ field_path = "stream", order = "ASCENDING" }, { field_path = "seq", order = "ASCENDING" }]
    },
  ]
}

variable "platform_secrets" {
  type        = list(string)
  description = "Secrets created even when no manifest mounts them yet (manifest secrets are added automatically)."
  default     = ["jwt-signing-key", "jwt-public-keys", "bootstrap-admin-password", "github-webhook-secret"]
}

variable "migrator_secret" {
  type        = string
  description = "Secret holding the password of the built-in `migrator` database user that runs migrations."
  default     = "sql-migrator-password"
}

variable "ci_service_account" {
  type        = string
  description = "Email of the service account running Cloud Build (migrations); empty to grant nothing."
  default     = ""
}

variable "environment_overrides" {
  type        = map(map(string))
  description = "Extra environment variables per deployment name for this environment (e.g. CORS_ORIGINS of the gateway)."
  default     = {}
}

variable "source_retention_days" {
  type        = number
  description = "Days a function source zip is kept in the bucket (rollbacks within that window need no rebuild)."
  default     = 90
}

variable "backup_retention_days" {
  type        = number
  description = "Days a database export is kept in the backup bucket (ops-api backups)."
  default     = 30
}

variable "labels" {
  type        = map(string)
  description = "Labels added to every labelled resource."
  default     = {}
}
