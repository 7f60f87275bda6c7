"""URLs of the viewer app's pages."""

from django.urls import path

from viewer import views

urlpatterns = [
    path("upload/", views.upload_page, name="upload"),
    path("upload/files", views.upload_file, name="upload-file"),
    path("studies/<str:study_uid>/", views.study_viewer, name="study-viewer"),
]
