"""URLs of the viewer app's pages."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
