"""Switchyard's platform library: what every context uses, one way each.

Modules: `config` (settings), `manifests` (function.yaml catalog), `db` (engine, unit of work),
`migrate` (Alembic per context), `events` (schemas, outbox, relay, consumer handler), `http`
(Flask app per context, problem+json, bodies, pagination, scheduled jobs), `auth` (RS256 JWTs,
roles), `clients` (Google clients, service-to-service calls), `health`, `logging`.
Import the module you need (`from shared.events import emit`); nothing here runs at import.
"""
