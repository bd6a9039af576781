from __future__ import annotations

from django.urls import path

import dockweb.converters  # noqa: F401  (<id:...>)
from dockweb.jobs import views as jobs_views
from networks import views
from networks.models import NetworkOperation

app_name = "networks"

# Included at /networks/.
urlpatterns = [
    path("", views.network_list, name="list"),
    path("prune/", views.network_prune, name="prune"),
    path("connect/", views.network_connect, name="connect"),
    path("disconnect/", views.network_disconnect, name="disconnect"),
    path(
        "operations/<id:pk>/",
        jobs_views.operation,
        {
            "model": NetworkOperation,
            "parts": "networks/operation.html",
            "context": views.operation_context,
        },
        name="operation",
    ),
    path("<str:key>/", views.network_detail, name="detail"),
    path("<str:key>/remove/", views.network_remove, name="remove"),
]
