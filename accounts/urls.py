from django.contrib.auth import views as auth_views
from django.urls import path

from . import oidc, signin, views
from .forms import ThrottledPasswordResetForm

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", signin.TwoStepLoginView.as_view(), name="login"),
    path("accounts/login/code/", signin.two_factor_verify, name="two_factor_verify"),
    path("accounts/two-factor/", signin.two_factor_setup, name="two_factor_setup"),
    path("accounts/two-factor/recovery-codes/", signin.recovery_codes_renew, name="recovery_codes_renew"),
    path(
        "accounts/password/reset/",
        auth_views.PasswordResetView.as_view(form_class=ThrottledPasswordResetForm),
        name="password_reset",
    ),
    path("accounts/password/reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "accounts/password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/password/reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("accounts/sso/start/", oidc.SSOStartView.as_view(), name="oidc_authentication_init"),
    path("accounts/sso/callback/", oidc.SSOCallbackView.as_view(), name="oidc_authentication_callback"),
    path("accounts/logout/", views.LogoutView.as_view(), name="logout"),
    path("t/<slug:slug>/keys/", views.api_keys, name="api_keys"),
    path("t/<slug:slug>/keys/<str:public_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("t/<slug:slug>/sign-in/", signin.tenant_sign_in_settings, name="tenant_sign_in"),
    path("t/<slug:slug>/tokens/", views.access_tokens, name="access_tokens"),
    path("t/<slug:slug>/tokens/<str:public_id>/revoke/", views.access_token_revoke, name="access_token_revoke"),
]
