"""URLs of the reviews app's pages."""

from django.urls import path

from reviews import consensus_views, export_views, views

urlpatterns = [
    path("", views.worklist, name="worklist"),
    path("consensus/", consensus_views.consensus_projects, name="consensus-projects"),
    path("consensus/projects/<int:pk>/", consensus_views.consensus_project, name="consensus-project"),
    path("feedback/", export_views.feedback_exports, name="feedback-exports"),
    path("feedback/<int:pk>/", export_views.feedback_export, name="feedback-export"),
]
