"""Site-wide views: sign in and out. Pages live in the apps (images, containers)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views

# LoginView and LogoutView are already @login_not_required; LogoutView accepts POST only,
# so a link or a prefetch cannot sign anyone out.
login = auth_views.LoginView.as_view(
    template_name="registration/login.html", redirect_authenticated_user=True
)
logout = auth_views.LogoutView.as_view()
