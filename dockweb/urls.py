"""URL map. Every page requires a signed-in user (LoginRequiredMiddleware) except /login/."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from dockweb import stream, views
from images import views as image_views

urlpatterns = [
    path("", image_views.image_list, name="home"),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    # live notices for the open pages, as Server-Sent Events (dockweb/stream.py)
    path("events/", stream.events, name="live"),
    path("", include("images.urls")),
    path("containers/", include("containers.urls")),
    path("volumes/", include("containers.volume_urls")),
    path("networks/", include("networks.urls")),
    path("disk/", include("disk.urls")),
    path("audit/", include("access.urls")),
    # JSON API (docs/api.md): session auth like the pages
    path("api/", include("images.api_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    # browsers that ask for /favicon.ico get the static icon base.html links to
    path(
        "favicon.ico",
        login_not_required(RedirectView.as_view(url=static("dockweb/favicon.svg"))),
        name="favicon",
    ),
]
