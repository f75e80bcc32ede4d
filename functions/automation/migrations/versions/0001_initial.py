"""automation: targets, credentials (metadata), jobs and versions, runs, schedules, grants, outbox

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from shared.events import create_outbox

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "automation"
TABLES = (
    "target_tags",
    "run_targets",
    "run_steps",
    "job_versions",
    "targets",
    "tag_grants",
    "schedules",
    "schedule_fires",
    "runs",
    "jobs",
    "credentials",
)


def upgrade() -> None:
    op.create_table('credentials',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('username', sa.String(length=200), nullable=True),
    sa.Column('secret_name', sa.String(length=255), nullable=False),
    sa.Column('current_version', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rotated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    schema='automation'
    )
    op.create_index('ix_credentials_created', 'credentials', ['created_at', 'id'], unique=False, schema='automation')
    op.create_table('jobs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    schema='automation'
    )
    op.create_index('ix_jobs_created', 'jobs', ['created_at', 'id'], unique=False, schema='automation')
    op.create_index('ux_jobs_name_live', 'jobs', ['name'], unique=True, schema='automation', postgresql_where=sa.text('deleted_at IS NULL'), sqlite_where=sa.text('deleted_at IS NULL'))
    op.create_table('runs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=False),
    sa.Column('job_version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('parameters', sa.Text(), nullable=False),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('schedule_id', sa.String(length=36), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    schema='automation'
    )
    op.create_index('ix_runs_created', 'runs', ['created_at', 'id'], unique=False, schema='automation')
    op.create_index('ix_runs_job', 'runs', ['job_id', 'created_at', 'id'], unique=False, schema='automation')
    op.create_index('ix_runs_running_heartbeat', 'runs', ['heartbeat_at'], unique=False, schema='automation', postgresql_where=sa.text("status = 'running'"), sqlite_where=sa.text("status = 'running'"))
    op.create_index('ix_runs_status', 'runs', ['status', 'created_at', 'id'], unique=False, schema='automation')
    op.create_table('schedule_fires',
    sa.Column('schedule_id', sa.String(length=36), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('schedule_id', 'due_at'),
    schema='automation'
    )
    op.create_table('schedules',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=False),
    sa.Column('cron', sa.String(length=100), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('parameters', sa.Text(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('catch_up', sa.String(length=10), nullable=False),
    sa.Column('last_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    schema='automation'
    )
    op.create_index('ix_schedules_created', 'schedules', ['created_at', 'id'], unique=False, schema='automation')
    op.create_index('ix_schedules_enabled', 'schedules', ['enabled'], unique=False, schema='automation')
    op.create_index('ix_schedules_job', 'schedules', ['job_id'], unique=False, schema='automation')
    op.create_table('tag_grants',
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('tag', sa.String(length=63), nullable=False),
    sa.Column('granted_by', sa.String(length=200), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('subject', 'tag'),
    schema='automation'
    )
    op.create_table('targets',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('host', sa.String(length=253), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('options', sa.Text(), nullable=False),
    sa.Column('credential_id', sa.String(length=36), nullable=True),
    sa.Column('internal', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    schema='automation'
    )
    op.create_index('ix_targets_created', 'targets', ['created_at', 'id'], unique=False, schema='automation')
    op.create_index('ix_targets_credential', 'targets', ['credential_id'], unique=False, schema='automation')
    op.create_table('job_versions',
    sa.Column('job_id', sa.String(length=36), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('definition', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['automation.jobs.id'], ),
    sa.PrimaryKeyConstraint('job_id', 'version'),
    schema='automation'
    )
    op.create_table('run_steps',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('target_id', sa.String(length=36), nullable=False),
    sa.Column('step_index', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['automation.runs.id'], ),
    sa.PrimaryKeyConstraint('run_id', 'target_id', 'step_index'),
    schema='automation'
    )
    op.create_table('run_targets',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('target_id', sa.String(length=36), nullable=False),
    sa.Column('target_name', sa.String(length=100), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['automation.runs.id'], ),
    sa.PrimaryKeyConstraint('run_id', 'target_id'),
    schema='automation'
    )
    op.create_table('target_tags',
    sa.Column('target_id', sa.String(length=36), nullable=False),
    sa.Column('tag', sa.String(length=63), nullable=False),
    sa.ForeignKeyConstraint(['target_id'], ['automation.targets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('target_id', 'tag'),
    schema='automation'
    )
    op.create_index('ix_target_tags_tag', 'target_tags', ['tag', 'target_id'], unique=False, schema='automation')
    create_outbox(op, SCHEMA)


def downgrade() -> None:
    op.drop_table("outbox", schema=SCHEMA)
    for table in TABLES:
        op.drop_table(table, schema=SCHEMA)
