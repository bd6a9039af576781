"""URL map. Every page requires a signed-in user (LoginRequiredMiddleware) except /login/."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

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
    path("disk/", include("disk.urls")),
    path("audit/", include("access.urls")),
    # JSON API (docs/api.md): session auth like the pages
    path("api/", include("images.api_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]
