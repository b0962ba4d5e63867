from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import InlineModelAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from . import services, twofactor
from .forms import UserAddForm, UserEditForm
from .models import AccessToken, ApiKey, Credential, Membership, ServiceToken, Tenant, TwoFactorDevice, User


class MembershipInline(admin.TabularInline):
    model = Membership
    raw_id_fields = ["user"]
    extra = 0


class UserMembershipInline(admin.TabularInline):
    model = Membership
    raw_id_fields = ["tenant"]
    extra = 0


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserEditForm
    add_form = UserAddForm
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_staff", "is_active", "last_login"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Personal info", {"fields": ["first_name", "last_name"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "usable_password", "password1", "password2"]}),
    ]

    def get_inlines(self, request: HttpRequest, obj: User | None) -> list[type[InlineModelAdmin[Any, Any]]]:
        # A user's tenants are edited on the user too, but only once the user exists.
        return [UserMembershipInline] if obj else []


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "timezone", "created_at"]
    search_fields = ["name", "slug"]
    list_filter = ["timezone"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__email", "tenant__name", "tenant__slug"]
    list_select_related = ["user", "tenant"]
    raw_id_fields = ["user", "tenant"]


@admin.action(description="Revoke selected")
def revoke(modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]) -> None:
    revoked = 0
    for credential in queryset:
        revoked += credential.revoked_at is None
        services.credential_revoke(credential)
    modeladmin.message_user(request, f"Revoked {revoked} (the others already were).", messages.SUCCESS)


class CredentialAdmin(admin.ModelAdmin):
    """Secrets are created here like anywhere else: shown once, stored as a keyed hash."""

    list_display = ["name", "public_id", "created_at", "last_used_at", "expires_at", "revoked_at"]
    search_fields = ["name", "public_id"]
    readonly_fields = ["public_id", "created_at", "last_used_at"]
    actions = [revoke]

    def get_fields(self, request: HttpRequest, obj: Credential | None = None) -> list[Any]:
        return [f for f in super().get_fields(request, obj) if f != "secret_hash"]

    def save_model(self, request: HttpRequest, obj: Credential, form: Any, change: bool) -> None:
        if not change:
            obj.new_secret = obj.set_new_secret()  # type: ignore[attr-defined]  # for response_add only
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: Credential, post_url_continue: str | None = None) -> HttpResponse:
        """Show the secret on a page of its own (never cached), not in a message cookie."""
        secret = getattr(obj, "new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "credential": obj,
            "secret": secret,
            "changelist_url": reverse(f"admin:{self.model._meta.app_label}_{self.model._meta.model_name}_changelist"),
        }
        response = TemplateResponse(request, "admin/credential_secret.html", context)
        add_never_cache_headers(response)
        return response


@admin.register(ApiKey)
class ApiKeyAdmin(CredentialAdmin):
    list_display = ["name", "tenant", *CredentialAdmin.list_display[1:]]
    list_filter = ["tenant", "revoked_at"]
    search_fields = ["name", "public_id", "tenant__slug"]
    list_select_related = ["tenant"]
    raw_id_fields = ["tenant", "created_by"]

    def get_readonly_fields(self, request: HttpRequest, obj: Credential | None = None) -> list[str]:
        # A key's calls and rollups belong to its tenant: moving it would hand its history over.
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "tenant"] if obj is not None else fields


@admin.register(AccessToken)
class AccessTokenAdmin(ApiKeyAdmin):
    pass


@admin.register(ServiceToken)
class ServiceTokenAdmin(CredentialAdmin):
    list_filter = ["revoked_at"]


@admin.register(TwoFactorDevice)
class TwoFactorDeviceAdmin(admin.ModelAdmin):
    """Only to remove a lost authenticator: the person then enrols again. The secret never shows."""

    list_display = ["user", "created_at", "confirmed_at"]
    search_fields = ["user__email"]
    list_select_related = ["user"]
    fields = ["user", "created_at", "confirmed_at"]
    readonly_fields = ["user", "created_at", "confirmed_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: TwoFactorDevice | None = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: TwoFactorDevice) -> None:
        twofactor.disable(obj.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[TwoFactorDevice]) -> None:
        for device in queryset.select_related("user"):
            twofactor.disable(device.user)
