from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self) -> None:
        from reviews.roles import roles_sync_after_migrate

        # Once per migrate: reviews is the last app, so every permission exists by then.
        post_migrate.connect(roles_sync_after_migrate, sender=self, dispatch_uid="reviews.roles_sync")
