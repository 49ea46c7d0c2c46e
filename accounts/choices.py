from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    VIEWER = "viewer", "Viewer"


# Roles that manage a merchant: connect accounts, receive operational alerts.
MANAGING_ROLES = (Role.OWNER, Role.ADMIN)
