"""URLs of the audit app's pages, under /audit/."""

from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("", views.audit_events, name="events"),
    path("export/<str:export_format>/", views.audit_export_download, name="export"),
    path("exports/", views.audit_export_create, name="export-create"),
    path("exports/<int:pk>/", views.audit_export_status, name="export-status"),
    path("exports/<int:pk>/download/", views.audit_export_file, name="export-file"),
]
