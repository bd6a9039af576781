from __future__ import annotations

from django.urls import path

import dockweb.converters  # noqa: F401  (<id:...>)
from dockweb.jobs import views as jobs_views
from images import views
from images.models import Operation

app_name = "images"

# Included at the site's root: /images/..., /pull/, /pulls/..., /operations/..., /build/,
# /builds/..., /registries/.
urlpatterns = [
    path("images/", views.image_list, name="list"),
    path("images/remove/", views.image_remove, name="remove"),
    path("images/<str:key>/", views.image_detail, name="detail"),
    path("images/<str:key>/tag/", views.image_tag, name="tag"),
    path("images/<str:key>/files/", views.image_files, name="files"),
    path("images/<str:key>/layers/<id:position>/", views.image_layer, name="layer"),
    path("pull/", views.pull, name="pull"),
    path("pull/normalize/", views.pull_normalize, name="normalize"),
    path("pulls/active/", views.active_pulls, name="active_pulls"),
    path("pulls/<id:pk>/", views.pull_detail, name="pull_detail"),
    path("pulls/<id:pk>/cancel/", views.pull_cancel, name="pull_cancel"),
    path(
        "operations/<id:pk>/",
        jobs_views.operation,
        {"model": Operation, "parts": "images/operation.html", "context": views.operation_context},
        name="operation",
    ),
    path("build/", views.build, name="build"),
    path("builds/<id:pk>/", views.build_detail, name="build_detail"),
    path("registries/", views.registries, name="registries"),
    path("registries/delete/", views.registry_delete, name="registry_delete"),
]
