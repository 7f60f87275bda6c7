"""URLs of the PACS page, mounted at /pacs/."""

from django.urls import path

from viewer import pacs_views

urlpatterns = [
    path("", pacs_views.pacs_search, name="pacs-search"),
    path("pulls/", pacs_views.pacs_pull_start, name="pacs-pull-start"),
    path("pulls/<int:pk>/", pacs_views.pacs_pull_status, name="pacs-pull-status"),
]
