from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "Inference"

    def ready(self) -> None:
        from inference.receivers import on_instance_stored
        from inference.selectors import output_series_scope
        from viewer.selectors import series_scope_register
        from viewer.signals import instance_stored

        instance_stored.connect(on_instance_stored, dispatch_uid="inference.series_pending")
        # The AI's SEG, Parametric Map and SR series are seen by whoever sees the job's output.
        series_scope_register(output_series_scope)
