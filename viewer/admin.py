"""Django admin registrations of the viewer app: the DICOM index, read-only."""

from django.contrib import admin
from django.http import HttpRequest

from viewer.models import Instance, Patient, Series, Study


class ReadOnlyAdmin(admin.ModelAdmin):
    """The index mirrors stored files: it changes only through ingest."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Patient)
class PatientAdmin(ReadOnlyAdmin):
    list_display = ["patient_id", "issuer", "created_at"]
    search_fields = ["patient_id"]
    ordering = ["patient_id", "pk"]


@admin.register(Study)
class StudyAdmin(ReadOnlyAdmin):
    list_display = ["study_uid", "patient", "study_date", "modalities", "accession_number", "description"]
    search_fields = ["study_uid", "accession_number", "patient__patient_id"]
    list_filter = ["study_date"]
    ordering = ["-created_at", "-pk"]  # the newest first, in the list and when a study is picked


@admin.register(Series)
class SeriesAdmin(ReadOnlyAdmin):
    list_display = ["series_uid", "study", "modality", "series_number", "description"]
    search_fields = ["series_uid", "study__study_uid"]
    ordering = ["-created_at", "-pk"]


@admin.register(Instance)
class InstanceAdmin(ReadOnlyAdmin):
    list_display = ["sop_instance_uid", "series", "instance_number", "transfer_syntax_uid", "size_bytes"]
    search_fields = ["sop_instance_uid", "series__series_uid"]
    ordering = ["-created_at", "-pk"]
    exclude = ["metadata", "frame_offsets"]
