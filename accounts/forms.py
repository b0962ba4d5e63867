from django import forms
from django.contrib.auth.forms import AdminUserCreationForm, AuthenticationForm, UserChangeForm
from django.utils import timezone

from .models import User

# Far enough for any real expiry; near year 9999 the UTC form of a local time overflows.
MAX_EXPIRY_YEAR = 9000


class CredentialCreateForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="What uses it, e.g. “billing-service”.")
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Optional, in the tenant's time zone. Leave empty for a key that does not expire.",
    )

    def __init__(self, *args, existing_names=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.existing_names = {name.lower() for name in existing_names}

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give it a name.")
        if name.lower() in self.existing_names:
            raise forms.ValidationError("A key or token with this name already exists.")
        return name

    def clean_expires_at(self):
        value = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        if value is not None and value.year >= MAX_EXPIRY_YEAR:
            raise forms.ValidationError(f"Choose an expiry before {MAX_EXPIRY_YEAR}, or none.")
        return value


def _clean_user_email(form):
    """Lower-case, and unique whatever the case: logins and lookups compare lower-case emails."""
    email = User.objects.normalize_email(form.cleaned_data["email"]).lower()
    others = User.objects.filter(email__iexact=email).exclude(pk=form.instance.pk)
    if others.exists():
        raise forms.ValidationError("A user with this email address already exists.")
    return email


class UserAddForm(AdminUserCreationForm):
    """Django's admin form is built for a ``username``; ours log in by email."""

    class Meta:
        model = User
        fields = ("email",)

    def clean_email(self):
        return _clean_user_email(self)


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"

    def clean_email(self):
        return _clean_user_email(self)


class EmailAuthenticationForm(AuthenticationForm):
    """Log in whatever the case of the typed email: emails are stored lower-case."""

    def clean_username(self):
        return User.objects.normalize_email(self.cleaned_data["username"].strip()).lower()
