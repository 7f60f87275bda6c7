from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """Registers the project-wide management commands (check_services, backup, restore,
    otp_reset) and the second factor's sign-in hook."""

    name = "config"
    verbose_name = "Overread"

    def ready(self) -> None:
        from django.contrib import admin
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from config.otp import receivers

        receivers.connect()
        # Devices are enrolled by their owner (/login/otp/setup/) and removed with
        # `manage.py otp_reset`; the admin pages would show their secrets.
        if admin.site.is_registered(TOTPDevice):
            admin.site.unregister(TOTPDevice)
