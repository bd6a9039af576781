from __future__ import annotations

from django.urls import path

import dockweb.converters  # noqa: F401  (<id:...>)
from containers import views
from containers.models import ContainerOperation
from dockweb.jobs import views as jobs_views

app_name = "containers"

# Included at /containers/; the volume pages at /volumes/ come from containers.volume_urls.
urlpatterns = [
    path("", views.container_list, name="list"),
    path("run/", views.container_run, name="run"),
    path(
        "operations/<id:pk>/",
        jobs_views.operation,
        {
            "model": ContainerOperation,
            "parts": "containers/operation.html",
            "context": views.operation_context,
        },
        name="operation",
    ),
    path("consoles/<str:sid>/", views.console_session, name="console_session"),
    path("consoles/<str:sid>/stream/", views.console_stream, name="console_stream"),
    path("consoles/<str:sid>/input/", views.console_input, name="console_input"),
    path("consoles/<str:sid>/resize/", views.console_resize, name="console_resize"),
    path("consoles/<str:sid>/close/", views.console_close, name="console_close"),
    path("<str:key>/", views.container_detail, name="detail"),
    path("<str:key>/logs/", views.container_logs, name="logs"),
    path("<str:key>/console/", views.container_console, name="console"),
    path("<str:key>/<str:action>/", views.container_action, name="action"),
]
