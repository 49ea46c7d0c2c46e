from django.db import models


class ActorType(models.TextChoices):
    CLERK_USER = "clerk_user", "Merchant user (Clerk)"
    STAFF = "staff", "Staff user"
    SYSTEM = "system", "System"
    AGENCY_TOKEN = "agency_token", "Agency token"
    ANONYMOUS = "anonymous", "Anonymous"
