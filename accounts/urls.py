from django.contrib.auth import views as auth_views
from django.urls import path

from . import views
from .forms import EmailAuthenticationForm

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True, authentication_form=EmailAuthenticationForm),
        name="login",
    ),
    path("accounts/logout/", views.LogoutView.as_view(), name="logout"),
    path("t/<slug:slug>/keys/", views.api_keys, name="api_keys"),
    path("t/<slug:slug>/keys/<str:public_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("t/<slug:slug>/tokens/", views.access_tokens, name="access_tokens"),
    path("t/<slug:slug>/tokens/<str:public_id>/revoke/", views.access_token_revoke, name="access_token_revoke"),
]
