"""The JSON API under /api/v1/: each app contributes its own routes."""

from django.urls import path

from reviews import api as reviews_api

urlpatterns = [
    path("me/", reviews_api.CurrentUserApi.as_view(), name="api-me"),
]
