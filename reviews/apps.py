from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self) -> None:
        from inference.selectors import job_scope_register
        from inference.signals import job_finished
        from reviews import permissions  # noqa: F401 (registers the object permissions with rules)
        from reviews.panels import adjudication_panel, reading_panel
        from reviews.receivers import on_instance_stored, on_job_finished
        from reviews.roles import roles_sync_after_migrate
        from reviews.selectors import ai_blind_scope, ai_scope, reader_series_scope, study_scope
        from viewer.panels import study_panel_register
        from viewer.selectors import series_scope_register, study_scope_register
        from viewer.signals import instance_stored

        # Once per migrate: reviews is the last app, so every permission exists by then.
        post_migrate.connect(roles_sync_after_migrate, sender=self, dispatch_uid="reviews.roles_sync")
        # Who sees which study and whose AI output: decided with the viewer's and inference's
        # own rules, in their queries (viewer.selectors, inference.selectors).
        study_scope_register(study_scope)
        job_scope_register(ai_scope)
        job_scope_register(ai_blind_scope)
        study_panel_register(reading_panel)  # the reading beside the images
        study_panel_register(adjudication_panel)  # ?case=<id>: a consensus case's reads
        series_scope_register(reader_series_scope)
        instance_stored.connect(on_instance_stored, dispatch_uid="reviews.study_arrived")
        job_finished.connect(on_job_finished, dispatch_uid="reviews.triage_refresh")
