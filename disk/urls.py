from __future__ import annotations

from django.urls import path

import dockweb.converters  # noqa: F401  (<id:...>)
from disk import views
from disk.models import PruneOperation
from dockweb.jobs import views as jobs_views

app_name = "disk"

urlpatterns = [
    path("", views.disk, name="disk"),
    path("prune/", views.prune, name="prune"),
    path(
        "prune/<id:pk>/",
        jobs_views.operation,
        {
            "model": PruneOperation,
            "parts": "disk/prune_operation.html",
            "status_id": "prune-result",
            "poll": "1s",
        },
        name="prune_result",
    ),
    path("measure/", views.measure, name="measure"),
]
