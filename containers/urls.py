from __future__ import annotations

from django.urls import path

from containers import views

app_name = "containers"

urlpatterns = [
    path("", views.container_list, name="list"),
]
