"""Root URL configuration: each app mounts its own URLs here."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config import health
from config.logout import LogoutView
from config.otp import views as otp_views

handler400 = "config.errors.bad_request"
handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"

urlpatterns = [
    path("login/", login_not_required(auth_views.LoginView.as_view()), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
    path("login/otp/", otp_views.otp_verify, name="otp-verify"),
    path("login/otp/setup/", otp_views.otp_setup, name="otp-setup"),
    path("health/", health.health, name="health"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("config.api_urls")),
    path("pacs/", include("viewer.pacs_urls")),
    path("dicomweb/", include("viewer.dicomweb.urls")),
    path("audit/", include("audit.urls")),
    path("inference/", include("inference.urls")),
    path("", include("viewer.urls")),
    path("", include("reviews.urls")),
]
