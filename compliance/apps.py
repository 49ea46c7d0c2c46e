from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance"

    def ready(self) -> None:
        from compliance import checks, receivers  # noqa: F401  (the deploy check; auth and admin-change receivers)
        from compliance.roles import app_role_privileges_grant, refuse_privileged_role

        # The app role's privileges follow every migrate; production refuses a role that could rewrite the log.
        post_migrate.connect(app_role_privileges_grant, sender=self, dispatch_uid="compliance.app_role_privileges")
        # The audit log's retention, written by the owner into the one function that may purge it.
        from compliance.retention import audit_retention_apply

        post_migrate.connect(audit_retention_apply, sender=self, dispatch_uid="compliance.audit_retention")
        connection_created.connect(refuse_privileged_role, dispatch_uid="compliance.refuse_privileged_role")
