"""Terraform of the database backups: a private bucket, and exactly the narrow grants a Cloud
SQL export needs, to ops-api only (a custom role with cloudsql.instances.export and
cloudsql.instances.get, objectCreator on that bucket only) plus the instance's own service
account as the writer of the export file; and ops-api's default bucket name matches."""

from __future__ import annotations

from infra_support import INFRA, blocks

MODULE = INFRA / "modules" / "switchyard"


def _grants(resources: dict, kind: str) -> dict:
    return {k: v for k, v in resources.items() if k.startswith(f"{kind}.")}


def test_backup_bucket_is_private_and_expires_exports():
    res = blocks(MODULE, "resource")
    bucket = res["google_storage_bucket.backups"]
    assert bucket["name"] == "${var.project_id}-switchyard-backups"
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    (rule,) = bucket["lifecycle_rule"]
    assert rule["condition"][0]["age"] == "${var.backup_retention_days}"
    assert rule["action"][0]["type"] == "Delete"
    assert "backup_retention_days" in blocks(MODULE, "variable")


def test_only_ops_api_may_export_and_only_into_the_backup_bucket():
    res = blocks(MODULE, "resource")
    role = res["google_project_iam_custom_role.sql_exporter"]
    assert sorted(role["permissions"]) == ["cloudsql.instances.export", "cloudsql.instances.get"]
    locals_ = blocks(MODULE, "locals")
    assert '"ops-api"' in str(locals_["backup_operators"])

    project_grants = _grants(res, "google_project_iam_member")
    exporters = {k: v for k, v in project_grants.items() if "sql_exporter" in str(v["role"])}
    assert list(exporters) == ["google_project_iam_member.sql_exporter"]
    grant = exporters["google_project_iam_member.sql_exporter"]
    assert grant["for_each"] == "${local.backup_operators}"
    assert grant["role"] == "${google_project_iam_custom_role.sql_exporter.name}"

    # Nothing else in the module grants export or a broader Cloud SQL role.
    for name, body in project_grants.items():
        assert "cloudsql.admin" not in str(body.get("role")), name
        assert "cloudsql.editor" not in str(body.get("role")), name

    on_bucket = {
        k: v
        for k, v in _grants(res, "google_storage_bucket_iam_member").items()
        if "backups" in str(v["bucket"])
    }
    assert set(on_bucket) == {
        "google_storage_bucket_iam_member.backup_creator",
        "google_storage_bucket_iam_member.sql_instance_backup_writer",
    }
    for body in on_bucket.values():
        assert body["bucket"] == "${google_storage_bucket.backups.name}"
        assert body["role"] == "roles/storage.objectCreator"
    creator = on_bucket["google_storage_bucket_iam_member.backup_creator"]
    assert creator["for_each"] == "${local.backup_operators}"
    writer = on_bucket["google_storage_bucket_iam_member.sql_instance_backup_writer"]
    assert writer["member"] == "serviceAccount:${module.sql.service_account_email}"
    assert "service_account_email" in blocks(INFRA / "modules" / "sql", "output")


def test_ops_api_finds_the_bucket_terraform_creates(monkeypatch, tmp_path):
    from functions.ops import service
    from shared.config import settings

    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "acme-prod")
    monkeypatch.setenv("SWITCHYARD_LOCAL_DIR", str(tmp_path))
    monkeypatch.delenv("BACKUP_BUCKET", raising=False)
    settings.cache_clear()
    try:
        assert service._bucket() == "acme-prod-switchyard-backups"
    finally:
        settings.cache_clear()
