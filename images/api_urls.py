"""The JSON API (docs/api.md), included under /api/ by dockweb/urls.py."""

from __future__ import annotations

from django.urls import path

import dockweb.converters  # noqa: F401  (<id:...>)
from images import api

app_name = "api"

urlpatterns = [
    path("images/", api.images, name="images"),
    path("images/remove/", api.image_remove, name="image_remove"),
    path("images/tag/", api.image_tag, name="image_tag"),
    # a reference may hold slashes (registry.local:5000/team/app:1)
    path("images/<path:key>/", api.image, name="image"),
    path("pulls/", api.pulls, name="pulls"),
    path("pulls/<id:pk>/", api.pull, name="pull"),
    path("pulls/<id:pk>/cancel/", api.pull_cancel, name="pull_cancel"),
    path("operations/<id:pk>/", api.operation, name="operation"),
]
