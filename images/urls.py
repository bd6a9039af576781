from __future__ import annotations

from django.urls import path

from images import views

app_name = "images"

urlpatterns = [
    path("", views.image_list, name="list"),
    path("pull/", views.pull, name="pull"),
]
