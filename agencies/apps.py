from django.apps import AppConfig


class AgenciesConfig(AppConfig):
    name = "agencies"
    verbose_name = "Agencies"

    def ready(self) -> None:
        # Connects the tokens' receivers of agencies.signals (revocation when a member, grant or agency ends).
        from agencies import tokens  # noqa: F401
