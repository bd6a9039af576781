from __future__ import annotations

from django.urls import path

from access import views

app_name = "access"

# Included at /audit/.
urlpatterns = [
    path("", views.audit_log, name="audit"),
]
