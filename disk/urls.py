from __future__ import annotations

from django.urls import path

from disk import views

app_name = "disk"

urlpatterns = [
    path("", views.disk, name="disk"),
    path("prune/", views.prune, name="prune"),
    path("prune/<int:pk>/", views.prune_result, name="prune_result"),
    path("measure/", views.measure, name="measure"),
]
