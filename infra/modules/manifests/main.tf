# The deployment plan of Switchyard, derived from functions/*/function.yaml and nothing else.
#
# This module is pure: no provider, no resource. It reads every manifest with yamldecode,
# applies the same defaults as shared/manifests.py, and derives every key the resources of
# modules/switchyard iterate over (deployments, topics, push subscriptions, schedules, service
# accounts, IAM bindings, environment variables). Because it needs no provider it can be
# evaluated offline with `terraform console`; tests/infra compares its output with the same
# plan re-derived in Python from shared.manifests. A new deployment therefore needs no edit
# here: it appears in every output below.

terraform {
  required_version = ">= 1.5.0"
}

locals {
  # Defaults: keep in step with shared/manifests.py (_RUNTIME_DEFAULTS,
  # _TRIGGER_RUNTIME_DEFAULTS, DB_POOL_MAX, _RETRY_DEFAULTS).
  runtime_defaults = { memory = "256Mi", cpu = 1, timeout_s = 60, min_instances = 0, max_instances = 10, concurrency = 40 }
  # A schedule runs one tick at a time: one instance unless its manifest says otherwise.
  trigger_runtime_defaults = { http = {}, event = {}, schedule = { max_instances = 1 } }
  # Database connections one instance may hold: min(concurrency, db_pool_max) (decision 0040).
  db_pool_max    = 2
  retry_defaults = { max_attempts = 5, min_backoff_s = 10, max_backoff_s = 600 }

  manifest_files = sort(fileset(var.functions_dir, "*/function.yaml"))
  manifests      = { for f in local.manifest_files : dirname(f) => yamldecode(file("${var.functions_dir}/${f}")) }

  raw = merge([
    for ctx, m in local.manifests : {
      for name, d in m.deployments : name => merge(d, { context = ctx, schema = try(m.owns_schema, null) })
    }
  ]...)

  # Every event type published by some deployment: one topic each.
  topics = sort(distinct(flatten([for d in values(local.raw) : try(d.publishes, [])])))

  deployments = {
    for name, d in local.raw : name => {
      name        = name
      context     = d.context
      schema      = d.schema
      entry_point = d.entry_point
      trigger     = d.trigger
      description = try(d.description, "")
      routes      = try(d.routes, [])
      publishes   = try(d.publishes, [])
      # "*" (or ["*"]) subscribes to every published topic.
      subscribes = contains(flatten([try(d.subscribes, [])]), "*") ? local.topics : flatten([try(d.subscribes, [])])
      schedule   = try(d.schedule, null)
      time_zone  = try(d.time_zone, "Etc/UTC")
      retry      = merge(local.retry_defaults, try(d.retry, {}))
      runtime    = merge(local.runtime_defaults, local.trigger_runtime_defaults[d.trigger], try(d.runtime, {}))
      db_pool = contains(try(d.uses, []), "sql") ? min(
        merge(local.runtime_defaults, try(d.runtime, {})).concurrency, local.db_pool_max
      ) : 0
      secrets = try(d.secrets, [])
      uses    = try(d.uses, [])
      ingress = try(d.ingress, "internal")
      env     = try(d.env, {})
      calls   = distinct(try(d.calls, [])) # http deployments it calls (shared.clients.call)
      # outbox-relay | outbox-operator | outbox-purger | dead-letter-operator
      # (shared.manifests.PLATFORM_ROLES)
      platform_roles = sort(distinct(try(d.platform_roles, [])))
      uses_sql       = contains(try(d.uses, []), "sql")
      # Event deployments always write Firestore: processed/{subscription}:{event_id}.
      uses_datastore = contains(try(d.uses, []), "firestore") || d.trigger == "event"
      # Service account ids are 6-30 characters; deployment names are 3-50.
      account_id = (length(name) > 30 ? "${substr(name, 0, 25)}-${substr(sha256(name), 0, 4)}"
      : length(name) < 6 ? "${name}-fn" : name)
    }
  }

  sa_email = { for n, d in local.deployments : n => "${d.account_id}@${var.project_id}.iam.gserviceaccount.com" }
  # Cloud SQL IAM database user of a service account: its email without ".gserviceaccount.com".
  db_user = { for n, e in local.sa_email : n => trimsuffix(e, ".gserviceaccount.com") }

  http_deployments     = sort([for n, d in local.deployments : n if d.trigger == "http"])
  event_deployments    = sort([for n, d in local.deployments : n if d.trigger == "event"])
  schedule_deployments = sort([for n, d in local.deployments : n if d.trigger == "schedule"])
  # Deployments that route to the others (they get the URL of every deployment and may invoke
  # every one of them).
  gateways = sort([for n, d in local.deployments : n if d.context == var.gateway_context])

  # One push subscription per (event deployment, subscribed topic): "<deployment>--<topic>".
  subscriptions = {
    for s in flatten([
      for n, d in local.deployments : [
        for t in d.subscribes : {
          name              = "${n}--${t}"
          deployment        = n
          topic             = t
          dead_letter_topic = "${t}.dead-letter"
          # Pub/Sub accepts 5..100 delivery attempts and backoffs of 0..600 s.
          max_delivery_attempts = min(max(d.retry.max_attempts, 5), 100)
          min_backoff_s         = min(max(d.retry.min_backoff_s, 0), 600)
          max_backoff_s         = min(max(d.retry.max_backoff_s, d.retry.min_backoff_s, 0), 600)
          ack_deadline_s        = min(max(d.runtime.timeout_s, 10), 600)
        }
      ]
    ]) : s.name => s
  }

  topic_wiring = {
    for t in local.topics : t => {
      publishers        = sort([for n, d in local.deployments : n if contains(d.publishes, t)])
      subscribers       = sort([for s in values(local.subscriptions) : s.deployment if s.topic == t])
      dead_letter_topic = "${t}.dead-letter"
      keep_subscription = "${t}.dead-letter--keep"
    }
  }

  schedules = {
    for n in local.schedule_deployments : n => {
      schedule  = local.deployments[n].schedule
      time_zone = local.deployments[n].time_zone
      # Cloud Scheduler accepts 15 s..30 min for HTTP targets.
      attempt_deadline_s = min(max(local.deployments[n].runtime.timeout_s, 15), 1800)
    }
  }

  # Platform roles, declared once in the manifests (`platform_roles`): the outbox relay
  # publishes every context's pending rows, the outbox roles get exactly the privileges their
  # work needs on every `<schema>.outbox` (outbox_privileges), the dead-letter operators read
  # the --keep subscriptions and redrive to the source topics.
  relays     = sort([for n, d in local.deployments : n if contains(d.platform_roles, "outbox-relay")])
  operators  = sort([for n, d in local.deployments : n if contains(d.platform_roles, "dead-letter-operator")])
  outbox_ops = sort([for n, d in local.deployments : n if length(setintersection(d.platform_roles, keys(local.outbox_role_privileges))) > 0])
  # A role shared.manifests does not know (it refuses it too).
  invalid_platform_roles = sort(flatten([
    for n, d in local.deployments : [
      for r in d.platform_roles : "${n}: ${r}" if !contains(["outbox-relay", "outbox-operator", "outbox-purger", "dead-letter-operator"], r)
    ]
  ]))

  # PostgreSQL privileges on `<schema>.outbox` per platform role (decision 0033): the relay
  # reads pending rows and marks them published, the operator reads (the outbox report), the
  # purger deletes published rows (retention). UPDATE and DELETE with a WHERE clause need
  # SELECT too.
  outbox_role_privileges = {
    "outbox-relay"    = ["select", "update"]
    "outbox-operator" = ["select"]
    "outbox-purger"   = ["select", "delete"]
  }
  outbox_privileges = {
    for n in local.outbox_ops : n => sort(distinct(flatten([
      for r in local.deployments[n].platform_roles : lookup(local.outbox_role_privileges, r, [])
    ])))
  }

  # Topics with a push subscription: only they have a dead-letter policy, so only they can hold
  # dead letters for the dead-letter operator to redrive.
  subscribed_topics = sort(distinct([for s in values(local.subscriptions) : s.topic]))

  # roles/pubsub.publisher: a deployment on the topics it declares; the outbox relay on every
  # topic (every context's pending rows); the dead-letter operator also on the topics it can
  # redrive to (those with a subscription), no others.
  publisher_bindings = {
    for b in flatten([
      for n, d in local.deployments : [
        for t in(contains(local.relays, n) ? local.topics : sort(distinct(concat(
          d.publishes, contains(local.operators, n) ? local.subscribed_topics : []
        )))) : { deployment = n, topic = t }
      ]
    ]) : "${b.deployment}/${b.topic}" => b
  }

  # roles/pubsub.subscriber on the dead-letter "--keep" subscriptions: inspection and redrive.
  dead_letter_bindings = {
    for b in flatten([for n in local.operators : [for t in local.topics : { deployment = n, topic = t }]]) :
    "${b.deployment}/${b.topic}" => b
  }

  secrets = sort(distinct(flatten([for d in values(local.deployments) : d.secrets])))
  secret_bindings = {
    for b in flatten([for n, d in local.deployments : [for s in d.secrets : { deployment = n, secret = s }]]) :
    "${b.deployment}/${b.secret}" => b
  }

  # Cloud Run's deterministic URL of each http deployment, known before the services exist:
  # https://<service>-<project number>.<region>.run.app.
  run_urls = var.project_number == "" || var.region == "" ? {} : {
    for n in local.http_deployments : n => "https://${n}-${var.project_number}.${var.region}.run.app"
  }

  # A `calls` entry that is not another http deployment (shared.manifests refuses it too).
  invalid_calls = sort(flatten([
    for n, d in local.deployments : [
      for c in d.calls : "${n} -> ${c}" if c == n || !contains(local.http_deployments, c)
    ]
  ]))

  # SERVICE_URLS of a deployment that calls others (shared.clients.call): only its declared
  # callees. The gateways get the URLs the functions report (added by modules/switchyard).
  service_urls = length(local.run_urls) == 0 ? {} : {
    for n, d in local.deployments : n => {
      for c in d.calls : c => local.run_urls[c] if contains(keys(local.run_urls), c) && c != n
    } if !contains(local.gateways, n) && length(d.calls) > 0
  }

  # roles/run.invoker: who may call whom. "@push" and "@scheduler" are the platform's invoker
  # service accounts (names no deployment can have); otherwise the invoker is a deployment:
  # the internet-facing gateways on the http deployments only (routing, GET /health), and each
  # deployment on the http deployments its manifest `calls`. Event and schedule deployments
  # are invoked by their push and scheduler identities alone (decision 0033).
  invoker_bindings = merge(
    { for n in local.event_deployments : "${n}/@push" => { target = n, invoker = "@push" } },
    { for n in local.schedule_deployments : "${n}/@scheduler" => { target = n, invoker = "@scheduler" } },
    merge([
      for g in local.gateways : {
        for t in local.http_deployments : "${t}/${g}" => { target = t, invoker = g } if !contains(local.gateways, t)
      }
    ]...),
    merge([
      for n, d in local.deployments : {
        for c in d.calls : "${c}/${n}" => { target = c, invoker = n } if c != n && contains(local.http_deployments, c)
      }
    ]...),
  )

  # roles/run.viewer on the event and schedule deployments for the gateways: what /api/health
  # needs to read their state (the service's Ready condition) without being able to invoke
  # them.
  health_viewer_bindings = merge([
    for g in local.gateways : {
      for t in concat(local.event_deployments, local.schedule_deployments) : "${t}/${g}" => { target = t, viewer = g }
    }
  ]...)

  # Unconditional project roles. Firestore's role is granted apart, on the database only
  # (firestore_bindings).
  project_roles = {
    for n, d in local.deployments : n => sort(
      d.uses_sql ? ["roles/cloudsql.client", "roles/cloudsql.instanceUser"] : []
    )
  }

  # roles/datastore.user of a deployment that uses Firestore (or consumes events: processed
  # markers), with an IAM condition naming the database (decision 0033).
  firestore_bindings = {
    for n, d in local.deployments : n => {
      role      = "roles/datastore.user"
      database  = var.firestore_database
      condition = "resource.name == \"projects/${var.project_id}/databases/${var.firestore_database}\""
    } if d.uses_datastore
  }

  # Runtime environment (SERVICE_URLS of the gateways is added where their URLs are known).
  environment = {
    for n, d in local.deployments : n => merge(
      d.env,
      {
        SWITCHYARD_ENV        = var.env
        GOOGLE_CLOUD_PROJECT  = var.project_id
        GOOGLE_CLOUD_REGION   = var.region
        SWITCHYARD_DEPLOYMENT = n
      },
      d.uses_sql ? {
        INSTANCE_CONNECTION_NAME = var.sql_connection_name
        DB_NAME                  = var.database_name
        DB_USER                  = local.db_user[n]
        DB_IAM_AUTH              = "true"
        # the pool the connection budget counts (sql.tf): no overflow beyond it
        DB_POOL_SIZE    = tostring(d.db_pool)
        DB_MAX_OVERFLOW = "0"
      } : {},
      contains(keys(local.service_urls), n) ? {
        SERVICE_URLS = jsonencode(local.service_urls[n])
      } : {},
    )
  }

  # Secret Manager secret id -> environment variable: jwt-signing-key -> JWT_SIGNING_KEY.
  secret_environment = {
    for n, d in local.deployments : n => { for s in d.secrets : upper(replace(s, "-", "_")) => s }
  }

  # Which IAM database users may use each context's schema: its own deployments on every
  # table (DML); the outbox roles on `<schema>.outbox` only, with their privileges
  # ("user:outbox:select,update", see shared.migrate).
  sql_grants = {
    for ctx, m in local.manifests : m.owns_schema => sort(distinct(concat(
      [for n, d in local.deployments : local.db_user[n] if d.context == ctx && d.uses_sql],
      [for n in local.outbox_ops : "${local.db_user[n]}:outbox:${join(",", local.outbox_privileges[n])}" if local.deployments[n].uses_sql],
    ))) if try(m.owns_schema, null) != null
  }
}
