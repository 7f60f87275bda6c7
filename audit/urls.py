"""URLs of the audit app's pages."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
