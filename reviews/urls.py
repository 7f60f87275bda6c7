"""URLs of the reviews app's pages."""

from django.urls import path

from reviews import views

urlpatterns = [
    path("", views.worklist, name="worklist"),
]
