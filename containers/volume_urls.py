from __future__ import annotations

from django.urls import path

from containers import views

app_name = "volumes"

# Included at /volumes/.
urlpatterns = [
    path("", views.volumes, name="list"),
    path("remove/", views.volume_remove, name="remove"),
    path("prune/", views.volume_prune, name="prune"),
]
