from __future__ import annotations

from django.urls import path

from containers import views

app_name = "containers"

# Included at /containers/; the volume pages at /volumes/ come from containers.volume_urls.
urlpatterns = [
    path("", views.container_list, name="list"),
    path("run/", views.container_run, name="run"),
    path("operations/<int:pk>/", views.operation, name="operation"),
    path("<str:key>/", views.container_detail, name="detail"),
    path("<str:key>/logs/", views.container_logs, name="logs"),
    path("<str:key>/<str:action>/", views.container_action, name="action"),
]
