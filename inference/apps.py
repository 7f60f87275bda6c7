from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "Inference"

    def ready(self) -> None:
        from inference.receivers import on_instance_stored
        from viewer.signals import instance_stored

        instance_stored.connect(on_instance_stored, dispatch_uid="inference.series_pending")
