"""URLs of the inference app's pages."""

from django.urls import path

from inference import views

app_name = "inference"
urlpatterns = [
    path("jobs/", views.job_list, name="jobs"),
    path("jobs/<int:pk>/status/", views.job_status, name="job-status"),
    path("jobs/<int:pk>/cancel/", views.job_cancel_view, name="job-cancel"),
    path("jobs/<int:pk>/rerun/", views.job_rerun_view, name="job-rerun"),
    path("studies/<str:study_uid>/panel/", views.study_panel, name="study-panel"),
]
