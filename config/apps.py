from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """Registers the project-wide management commands (check_services)."""

    name = "config"
    verbose_name = "Overread"
