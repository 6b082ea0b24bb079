"""Initial schema: every table of docs/development.md plus the outbox.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-27

The column types are frozen copies of ``attune.db.types`` so this revision never changes when the
application's types do. ``UTCDateTime`` only differs from ``DateTime(timezone=True)`` in Python-side
value conversion, so the DDL is the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit ids; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TextList = sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "artifact",
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column(
            "scope",
            sa.Enum(
                "system",
                "identity",
                "pack",
                "action",
                "sensor",
                name="owner_type_enum",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column(
            "type",
            sa.Enum(
                "file_binary",
                "file_datatable",
                "file_image",
                "file_text",
                "other",
                "progress",
                "url",
                name="artifact_type_enum",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "retention_policy",
            sa.Enum(
                "versions",
                "days",
                "hours",
                "minutes",
                name="artifact_retention_enum",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("retention_limit", sa.Integer(), nullable=False),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifact")),
    )
    op.create_index(op.f("ix_artifact_ref"), "artifact", ["ref"], unique=False)

    op.create_table(
        "execution",
        sa.Column("action", BigId, nullable=True),
        sa.Column("action_ref", sa.Text(), nullable=False),
        sa.Column("config", Json, nullable=True),
        sa.Column("env_vars", Json, nullable=True),
        sa.Column("parent", BigId, nullable=True),
        sa.Column("enforcement", BigId, nullable=True),
        sa.Column("executor", BigId, nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "requested",
                "scheduling",
                "scheduled",
                "running",
                "completed",
                "failed",
                "canceling",
                "cancelled",
                "timeout",
                "abandoned",
                name="execution_status_enum",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("result", Json, nullable=True),
        sa.Column("started_at", Timestamp, nullable=True),
        sa.Column("worker", BigId, nullable=True),
        sa.Column("is_workflow", sa.Boolean(), nullable=False),
        sa.Column("workflow_def", BigId, nullable=True),
        sa.Column("workflow_task", Json, nullable=True),
        sa.Column("workflow_execution_id", BigId, nullable=True),
        sa.Column("workflow_task_name", sa.Text(), nullable=True),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=True),
        sa.Column("retry_reason", sa.Text(), nullable=True),
        sa.Column("original_execution", BigId, nullable=True),
        sa.Column("secret_params", sa.Text(), nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_execution")),
    )
    op.create_index(op.f("ix_execution_action"), "execution", ["action"], unique=False)
    op.create_index(op.f("ix_execution_action_ref"), "execution", ["action_ref"], unique=False)
    op.create_index(op.f("ix_execution_enforcement"), "execution", ["enforcement"], unique=False)
    op.create_index(op.f("ix_execution_executor"), "execution", ["executor"], unique=False)
    op.create_index(
        op.f("ix_execution_original_execution"), "execution", ["original_execution"], unique=False
    )
    op.create_index(op.f("ix_execution_parent_created"), "execution", ["parent", "created"], unique=False)
    op.create_index(op.f("ix_execution_status_created"), "execution", ["status", "created"], unique=False)
    op.create_index(op.f("ix_execution_status_updated"), "execution", ["status", "updated"], unique=False)
    op.create_index(op.f("ix_execution_worker"), "execution", ["worker"], unique=False)
    op.create_index(op.f("ix_execution_workflow_def"), "execution", ["workflow_def"], unique=False)
    op.create_index(
        op.f("ix_execution_workflow_execution_id_workflow_task_name"),
        "execution",
        ["workflow_execution_id", "workflow_task_name"],
        unique=False,
    )

    op.create_table(
        "execution_history",
        sa.Column("time", Timestamp, nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("entity_id", BigId, nullable=False),
        sa.Column("entity_ref", sa.Text(), nullable=True),
        sa.Column("changed_fields", TextList, nullable=False),
        sa.Column("old_values", Json, nullable=True),
        sa.Column("new_values", Json, nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.CheckConstraint(
            "operation IN ('INSERT', 'UPDATE', 'DELETE')", name=op.f("execution_history_operation")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_execution_history")),
    )
    op.create_index(
        op.f("ix_execution_history_entity_id_time"), "execution_history", ["entity_id", "time"], unique=False
    )
    op.create_index(
        op.f("ix_execution_history_entity_ref_time"),
        "execution_history",
        ["entity_ref", "time"],
        unique=False,
    )
    op.create_index(op.f("ix_execution_history_time"), "execution_history", ["time"], unique=False)

    op.create_table(
        "identity",
        sa.Column("login", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("attributes", Json, nullable=False),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity")),
        sa.UniqueConstraint("login", name=op.f("uq_identity_login")),
    )
    op.create_table(
        "notification",
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("entity_type", sa.Text(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("activity", sa.Text(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "created",
                "queued",
                "processing",
                "error",
                name="notification_status_enum",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("content", Json, nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification")),
    )
    op.create_table(
        "outbox",
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("routing_key", sa.Text(), nullable=False),
        sa.Column("message_type", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("body", Json, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.Column("available_at", Timestamp, nullable=False),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index(op.f("ix_outbox_available_at_id"), "outbox", ["available_at", "id"], unique=False)
    op.create_index(op.f("ix_outbox_message_id"), "outbox", ["message_id"], unique=False)

    op.create_table(
        "worker_history",
        sa.Column("time", Timestamp, nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("entity_id", BigId, nullable=False),
        sa.Column("entity_ref", sa.Text(), nullable=True),
        sa.Column("changed_fields", TextList, nullable=False),
        sa.Column("old_values", Json, nullable=True),
        sa.Column("new_values", Json, nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.CheckConstraint(
            "operation IN ('INSERT', 'UPDATE', 'DELETE')", name=op.f("worker_history_operation")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_history")),
    )
    op.create_index(
        op.f("ix_worker_history_entity_id_time"), "worker_history", ["entity_id", "time"], unique=False
    )
    op.create_index(
        op.f("ix_worker_history_entity_ref_time"), "worker_history", ["entity_ref", "time"], unique=False
    )
    op.create_index(op.f("ix_worker_history_time"), "worker_history", ["time"], unique=False)

    op.create_table(
        "inquiry",
        sa.Column("execution", BigId, nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("response_schema", Json, nullable=True),
        sa.Column("assigned_to", BigId, nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "responded",
                "timeout",
                "cancelled",
                name="inquiry_status_enum",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("response", Json, nullable=True),
        sa.Column("timeout_at", Timestamp, nullable=True),
        sa.Column("responded_at", Timestamp, nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["assigned_to"],
            ["identity.id"],
            name=op.f("fk_inquiry_assigned_to_identity"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inquiry")),
    )
    op.create_index(op.f("ix_inquiry_assigned_to"), "inquiry", ["assigned_to"], unique=False)
    op.create_index(op.f("ix_inquiry_execution"), "inquiry", ["execution"], unique=False)
    op.create_index(op.f("ix_inquiry_status"), "inquiry", ["status"], unique=False)

    op.create_table(
        "pack",
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("conf_schema", Json, nullable=False),
        sa.Column("config", Json, nullable=False),
        sa.Column("meta", Json, nullable=False),
        sa.Column("tags", TextList, nullable=False),
        sa.Column("runtime_deps", TextList, nullable=False),
        sa.Column("dependencies", TextList, nullable=False),
        sa.Column("is_standard", sa.Boolean(), nullable=False),
        sa.Column("installers", Json, nullable=True),
        sa.Column("source_type", sa.Text(), nullable=True),
        sa.Column("source_url", sa.Text(), nullable=True),
        sa.Column("source_ref", sa.Text(), nullable=True),
        sa.Column("checksum", sa.Text(), nullable=True),
        sa.Column("checksum_verified", sa.Boolean(), nullable=True),
        sa.Column("installation_method", sa.Text(), nullable=True),
        sa.Column("storage_path", sa.Text(), nullable=True),
        sa.Column("installed_at", Timestamp, nullable=True),
        sa.Column("installed_by", BigId, nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["installed_by"], ["identity.id"], name=op.f("fk_pack_installed_by_identity"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pack")),
        sa.UniqueConstraint("ref", name=op.f("uq_pack_ref")),
    )
    op.create_table(
        "pack_test_execution",
        sa.Column("pack_id", BigId, nullable=False),
        sa.Column("pack_version", sa.String(length=50), nullable=False),
        sa.Column("execution_time", Timestamp, nullable=False),
        sa.Column("trigger_reason", sa.String(length=50), nullable=False),
        sa.Column("total_tests", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("pass_rate", sa.Numeric(precision=5, scale=4, asdecimal=False), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("result", Json, nullable=False),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.CheckConstraint(
            "trigger_reason IN ('install', 'update', 'manual', 'validation')",
            name=op.f("pack_test_execution_trigger_reason"),
        ),
        sa.CheckConstraint(
            "pass_rate >= 0 AND pass_rate <= 1", name=op.f("pack_test_execution_pass_rate_range")
        ),
        sa.CheckConstraint(
            "total_tests >= 0 AND passed >= 0 AND failed >= 0 AND skipped >= 0",
            name=op.f("pack_test_execution_counts_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["pack_id"], ["pack.id"], name=op.f("fk_pack_test_execution_pack_id_pack"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pack_test_execution")),
    )
    op.create_index(
        op.f("ix_pack_test_execution_pack_id_execution_time"),
        "pack_test_execution",
        ["pack_id", "execution_time"],
        unique=False,
    )

    op.create_table(
        "permission_set",
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("pack", BigId, nullable=True),
        sa.Column("pack_ref", sa.Text(), nullable=True),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("grants", Json, nullable=False),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["pack"], ["pack.id"], name=op.f("fk_permission_set_pack_pack"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_permission_set")),
        sa.UniqueConstraint("ref", name=op.f("uq_permission_set_ref")),
    )
    op.create_index(op.f("ix_permission_set_pack"), "permission_set", ["pack"], unique=False)

    op.create_table(
        "runtime",
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("pack", BigId, nullable=True),
        sa.Column("pack_ref", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("distributions", Json, nullable=False),
        sa.Column("installation", Json, nullable=True),
        sa.Column("installers", Json, nullable=True),
        sa.Column("execution_config", Json, nullable=False),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["pack"], ["pack.id"], name=op.f("fk_runtime_pack_pack"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtime")),
        sa.UniqueConstraint("ref", name=op.f("uq_runtime_ref")),
    )
    op.create_index(op.f("ix_runtime_pack"), "runtime", ["pack"], unique=False)

    op.create_table(
        "trigger",
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("pack", BigId, nullable=True),
        sa.Column("pack_ref", sa.Text(), nullable=True),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("is_adhoc", sa.Boolean(), nullable=False),
        sa.Column("param_schema", Json, nullable=True),
        sa.Column("out_schema", Json, nullable=True),
        sa.Column("webhook_enabled", sa.Boolean(), nullable=False),
        sa.Column("webhook_key", sa.String(length=64), nullable=True),
        sa.Column("webhook_config", Json, nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["pack"], ["pack.id"], name=op.f("fk_trigger_pack_pack"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger")),
        sa.UniqueConstraint("ref", name=op.f("uq_trigger_ref")),
        sa.UniqueConstraint("webhook_key", name=op.f("uq_trigger_webhook_key")),
    )
    op.create_index(op.f("ix_trigger_pack"), "trigger", ["pack"], unique=False)

    op.create_table(
        "workflow_definition",
        sa.Column("ref", sa.String(length=255), nullable=False),
        sa.Column("pack", BigId, nullable=False),
        sa.Column("pack_ref", sa.String(length=255), nullable=False),
        sa.Column("label", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("param_schema", Json, nullable=True),
        sa.Column("out_schema", Json, nullable=True),
        sa.Column("definition", Json, nullable=False),
        sa.Column("tags", TextList, nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["pack"], ["pack.id"], name=op.f("fk_workflow_definition_pack_pack"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_definition")),
        sa.UniqueConstraint("ref", name=op.f("uq_workflow_definition_ref")),
    )
    op.create_index(op.f("ix_workflow_definition_pack"), "workflow_definition", ["pack"], unique=False)

    op.create_table(
        "action",
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("pack", BigId, nullable=False),
        sa.Column("pack_ref", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("entrypoint", sa.Text(), nullable=False),
        sa.Column("runtime", BigId, nullable=True),
        sa.Column("param_schema", Json, nullable=True),
        sa.Column("out_schema", Json, nullable=True),
        sa.Column("parameter_delivery", sa.Text(), nullable=False),
        sa.Column("parameter_format", sa.Text(), nullable=False),
        sa.Column("output_format", sa.Text(), nullable=False),
        sa.Column("is_adhoc", sa.Boolean(), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=True),
        sa.Column("max_retries", sa.Integer(), nullable=True),
        sa.Column("runtime_version_constraint", sa.Text(), nullable=True),
        sa.Column("workflow_def", BigId, nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.CheckConstraint(
            "output_format IN ('text', 'json', 'yaml', 'jsonl')", name=op.f("action_output_format")
        ),
        sa.CheckConstraint("parameter_delivery IN ('stdin', 'file')", name=op.f("action_parameter_delivery")),
        sa.CheckConstraint(
            "parameter_format IN ('dotenv', 'json', 'yaml')", name=op.f("action_parameter_format")
        ),
        sa.ForeignKeyConstraint(["pack"], ["pack.id"], name=op.f("fk_action_pack_pack"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["runtime"], ["runtime.id"], name=op.f("fk_action_runtime_runtime")),
        sa.ForeignKeyConstraint(
            ["workflow_def"],
            ["workflow_definition.id"],
            name=op.f("fk_action_workflow_def_workflow_definition"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action")),
        sa.UniqueConstraint("ref", name=op.f("uq_action_ref")),
    )
    op.create_index(op.f("ix_action_pack"), "action", ["pack"], unique=False)
    op.create_index(op.f("ix_action_runtime"), "action", ["runtime"], unique=False)
    op.create_index(op.f("ix_action_workflow_def"), "action", ["workflow_def"], unique=False)

    op.create_table(
        "pack_environment",
        sa.Column("pack", BigId, nullable=False),
        sa.Column("pack_ref", sa.Text(), nullable=False),
        sa.Column("runtime", BigId, nullable=False),
        sa.Column("runtime_ref", sa.Text(), nullable=False),
        sa.Column("env_path", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "installing",
                "ready",
                "failed",
                "outdated",
                name="pack_environment_status_enum",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("installed_at", Timestamp, nullable=True),
        sa.Column("last_verified", Timestamp, nullable=True),
        sa.Column("install_log", sa.Text(), nullable=True),
        sa.Column("install_error", sa.Text(), nullable=True),
        sa.Column("metadata", Json, nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["pack"], ["pack.id"], name=op.f("fk_pack_environment_pack_pack"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["runtime"], ["runtime.id"], name=op.f("fk_pack_environment_runtime_runtime"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pack_environment")),
        sa.UniqueConstraint("pack", "runtime", name=op.f("uq_pack_environment_pack_runtime")),
    )
    op.create_index(op.f("ix_pack_environment_runtime"), "pack_environment", ["runtime"], unique=False)

    op.create_table(
        "permission_assignment",
        sa.Column("identity", BigId, nullable=False),
        sa.Column("permset", BigId, nullable=False),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["identity"],
            ["identity.id"],
            name=op.f("fk_permission_assignment_identity_identity"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["permset"],
            ["permission_set.id"],
            name=op.f("fk_permission_assignment_permset_permission_set"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_permission_assignment")),
        sa.UniqueConstraint("identity", "permset", name=op.f("uq_permission_assignment_identity_permset")),
    )
    op.create_index(
        op.f("ix_permission_assignment_permset"), "permission_assignment", ["permset"], unique=False
    )

    op.create_table(
        "runtime_version",
        sa.Column("runtime", BigId, nullable=False),
        sa.Column("runtime_ref", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("version_major", sa.Integer(), nullable=True),
        sa.Column("version_minor", sa.Integer(), nullable=True),
        sa.Column("version_patch", sa.Integer(), nullable=True),
        sa.Column("execution_config", Json, nullable=False),
        sa.Column("distributions", Json, nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("verified_at", Timestamp, nullable=True),
        sa.Column("meta", Json, nullable=False),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["runtime"], ["runtime.id"], name=op.f("fk_runtime_version_runtime_runtime"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtime_version")),
        sa.UniqueConstraint("runtime", "version", name=op.f("uq_runtime_version_runtime_version")),
    )
    op.create_index(
        op.f("ix_runtime_version_runtime_version_major_version_minor_version_patch"),
        "runtime_version",
        ["runtime", "version_major", "version_minor", "version_patch"],
        unique=False,
    )

    op.create_table(
        "sensor",
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("pack", BigId, nullable=True),
        sa.Column("pack_ref", sa.Text(), nullable=True),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("entrypoint", sa.Text(), nullable=False),
        sa.Column("runtime", BigId, nullable=False),
        sa.Column("runtime_ref", sa.Text(), nullable=False),
        sa.Column("trigger", BigId, nullable=False),
        sa.Column("trigger_ref", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("is_adhoc", sa.Boolean(), nullable=False),
        sa.Column("param_schema", Json, nullable=True),
        sa.Column("config", Json, nullable=True),
        sa.Column("runtime_version_constraint", sa.Text(), nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["pack"], ["pack.id"], name=op.f("fk_sensor_pack_pack"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["runtime"], ["runtime.id"], name=op.f("fk_sensor_runtime_runtime"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["trigger"], ["trigger.id"], name=op.f("fk_sensor_trigger_trigger"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensor")),
        sa.UniqueConstraint("ref", name=op.f("uq_sensor_ref")),
    )
    op.create_index(op.f("ix_sensor_pack"), "sensor", ["pack"], unique=False)
    op.create_index(op.f("ix_sensor_runtime"), "sensor", ["runtime"], unique=False)
    op.create_index(op.f("ix_sensor_trigger"), "sensor", ["trigger"], unique=False)

    op.create_table(
        "worker",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "worker_type",
            sa.Enum(
                "local",
                "remote",
                "container",
                name="worker_type_enum",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "worker_role",
            sa.Enum(
                "action",
                "sensor",
                "hybrid",
                name="worker_role_enum",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("runtime", BigId, nullable=True),
        sa.Column("host", sa.Text(), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "inactive",
                "busy",
                "error",
                name="worker_status_enum",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("capabilities", Json, nullable=True),
        sa.Column("meta", Json, nullable=True),
        sa.Column("last_heartbeat", Timestamp, nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["runtime"], ["runtime.id"], name=op.f("fk_worker_runtime_runtime"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker")),
        sa.UniqueConstraint("name", name=op.f("uq_worker_name")),
    )
    op.create_index(op.f("ix_worker_runtime"), "worker", ["runtime"], unique=False)

    op.create_table(
        "workflow_execution",
        sa.Column("execution", BigId, nullable=False),
        sa.Column("workflow_def", BigId, nullable=False),
        sa.Column("current_tasks", TextList, nullable=True),
        sa.Column("completed_tasks", TextList, nullable=True),
        sa.Column("failed_tasks", TextList, nullable=True),
        sa.Column("skipped_tasks", TextList, nullable=True),
        sa.Column("variables", Json, nullable=True),
        sa.Column("task_graph", Json, nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "requested",
                "scheduling",
                "scheduled",
                "running",
                "completed",
                "failed",
                "canceling",
                "cancelled",
                "timeout",
                "abandoned",
                name="execution_status_enum",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("pause_reason", sa.Text(), nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_def"],
            ["workflow_definition.id"],
            name=op.f("fk_workflow_execution_workflow_def_workflow_definition"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_execution")),
    )
    op.create_index(
        op.f("ix_workflow_execution_execution"), "workflow_execution", ["execution"], unique=False
    )
    op.create_index(
        op.f("ix_workflow_execution_workflow_def"), "workflow_execution", ["workflow_def"], unique=False
    )

    op.create_table(
        "key",
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column(
            "owner_type",
            sa.Enum(
                "system",
                "identity",
                "pack",
                "action",
                "sensor",
                name="owner_type_enum",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("owner_identity", BigId, nullable=True),
        sa.Column("owner_pack", BigId, nullable=True),
        sa.Column("owner_pack_ref", sa.Text(), nullable=True),
        sa.Column("owner_action", BigId, nullable=True),
        sa.Column("owner_action_ref", sa.Text(), nullable=True),
        sa.Column("owner_sensor", BigId, nullable=True),
        sa.Column("owner_sensor_ref", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("encryption_key_hash", sa.Text(), nullable=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_action"], ["action.id"], name=op.f("fk_key_owner_action_action"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["owner_identity"],
            ["identity.id"],
            name=op.f("fk_key_owner_identity_identity"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_pack"], ["pack.id"], name=op.f("fk_key_owner_pack_pack"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["owner_sensor"], ["sensor.id"], name=op.f("fk_key_owner_sensor_sensor"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key")),
        sa.UniqueConstraint("owner_type", "owner", "name", name=op.f("uq_key_owner_type_owner_name")),
        sa.UniqueConstraint("ref", name=op.f("uq_key_ref")),
    )
    op.create_index(op.f("ix_key_owner_action"), "key", ["owner_action"], unique=False)
    op.create_index(op.f("ix_key_owner_identity"), "key", ["owner_identity"], unique=False)
    op.create_index(op.f("ix_key_owner_pack"), "key", ["owner_pack"], unique=False)
    op.create_index(op.f("ix_key_owner_sensor"), "key", ["owner_sensor"], unique=False)

    op.create_table(
        "policy",
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("pack", BigId, nullable=True),
        sa.Column("pack_ref", sa.Text(), nullable=True),
        sa.Column("action", BigId, nullable=True),
        sa.Column("action_ref", sa.Text(), nullable=True),
        sa.Column("parameters", TextList, nullable=False),
        sa.Column(
            "method",
            sa.Enum(
                "cancel",
                "enqueue",
                name="policy_method_enum",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("window_seconds", sa.Integer(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tags", TextList, nullable=False),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.CheckConstraint("kind IN ('concurrency', 'rate_limit')", name=op.f("policy_kind")),
        sa.CheckConstraint("threshold > 0", name=op.f("policy_threshold_positive")),
        sa.ForeignKeyConstraint(
            ["action"], ["action.id"], name=op.f("fk_policy_action_action"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["pack"], ["pack.id"], name=op.f("fk_policy_pack_pack"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy")),
        sa.UniqueConstraint("ref", name=op.f("uq_policy_ref")),
    )
    op.create_index(op.f("ix_policy_action"), "policy", ["action"], unique=False)
    op.create_index(op.f("ix_policy_pack"), "policy", ["pack"], unique=False)

    op.create_table(
        "queue_stats",
        sa.Column("action_id", BigId, autoincrement=False, nullable=False),
        sa.Column("queue_length", sa.Integer(), nullable=False),
        sa.Column("active_count", sa.Integer(), nullable=False),
        sa.Column("max_concurrent", sa.Integer(), nullable=False),
        sa.Column("oldest_enqueued_at", Timestamp, nullable=True),
        sa.Column("total_enqueued", sa.BigInteger(), nullable=False),
        sa.Column("total_completed", sa.BigInteger(), nullable=False),
        sa.Column("last_updated", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["action_id"], ["action.id"], name=op.f("fk_queue_stats_action_id_action"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("action_id", name=op.f("pk_queue_stats")),
    )
    op.create_table(
        "rule",
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("pack", BigId, nullable=False),
        sa.Column("pack_ref", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("action", BigId, nullable=True),
        sa.Column("action_ref", sa.Text(), nullable=False),
        sa.Column("trigger", BigId, nullable=True),
        sa.Column("trigger_ref", sa.Text(), nullable=False),
        sa.Column("conditions", Json, nullable=False),
        sa.Column("action_params", Json, nullable=True),
        sa.Column("trigger_params", Json, nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("is_adhoc", sa.Boolean(), nullable=False),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("updated", Timestamp, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["action"], ["action.id"], name=op.f("fk_rule_action_action"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["pack"], ["pack.id"], name=op.f("fk_rule_pack_pack"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["trigger"], ["trigger.id"], name=op.f("fk_rule_trigger_trigger"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule")),
        sa.UniqueConstraint("ref", name=op.f("uq_rule_ref")),
    )
    op.create_index(op.f("ix_rule_action"), "rule", ["action"], unique=False)
    op.create_index(op.f("ix_rule_pack"), "rule", ["pack"], unique=False)
    op.create_index(op.f("ix_rule_trigger"), "rule", ["trigger"], unique=False)
    op.create_index(op.f("ix_rule_trigger_ref"), "rule", ["trigger_ref"], unique=False)

    op.create_table(
        "enforcement",
        sa.Column("rule", BigId, nullable=True),
        sa.Column("rule_ref", sa.Text(), nullable=False),
        sa.Column("trigger_ref", sa.Text(), nullable=False),
        sa.Column("config", Json, nullable=True),
        sa.Column("event", BigId, nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "created",
                "processed",
                "disabled",
                name="enforcement_status_enum",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("payload", Json, nullable=False),
        sa.Column(
            "condition",
            sa.Enum(
                "any",
                "all",
                name="enforcement_condition_enum",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("conditions", Json, nullable=False),
        sa.Column("resolved_at", Timestamp, nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["rule"], ["rule.id"], name=op.f("fk_enforcement_rule_rule"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enforcement")),
    )
    op.create_index(op.f("ix_enforcement_event"), "enforcement", ["event"], unique=False)
    op.create_index(op.f("ix_enforcement_rule"), "enforcement", ["rule"], unique=False)
    op.create_index(op.f("ix_enforcement_status_created"), "enforcement", ["status", "created"], unique=False)

    op.create_table(
        "event",
        sa.Column("trigger", BigId, nullable=True),
        sa.Column("trigger_ref", sa.Text(), nullable=False),
        sa.Column("config", Json, nullable=True),
        sa.Column("payload", Json, nullable=True),
        sa.Column("source", BigId, nullable=True),
        sa.Column("source_ref", sa.Text(), nullable=True),
        sa.Column("rule", BigId, nullable=True),
        sa.Column("rule_ref", sa.Text(), nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["rule"], ["rule.id"], name=op.f("fk_event_rule_rule"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["source"], ["sensor.id"], name=op.f("fk_event_source_sensor"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["trigger"], ["trigger.id"], name=op.f("fk_event_trigger_trigger"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event")),
    )
    op.create_index(op.f("ix_event_rule"), "event", ["rule"], unique=False)
    op.create_index(op.f("ix_event_source"), "event", ["source"], unique=False)
    op.create_index(op.f("ix_event_trigger"), "event", ["trigger"], unique=False)
    op.create_index(op.f("ix_event_trigger_ref_created"), "event", ["trigger_ref", "created"], unique=False)


def downgrade() -> None:
    # Dependents first; dropping a table drops its indexes and constraints with it.
    for table in (
        "event",
        "enforcement",
        "rule",
        "queue_stats",
        "policy",
        "key",
        "workflow_execution",
        "worker",
        "sensor",
        "runtime_version",
        "permission_assignment",
        "pack_environment",
        "action",
        "workflow_definition",
        "trigger",
        "runtime",
        "permission_set",
        "pack_test_execution",
        "pack",
        "inquiry",
        "worker_history",
        "outbox",
        "notification",
        "identity",
        "execution_history",
        "execution",
        "artifact",
    ):
        op.drop_table(table)
