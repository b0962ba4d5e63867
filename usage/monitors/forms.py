"""The monitor form: the Monitors page and (through it) the REST API validate rules the same way."""

from typing import cast

from django import forms
from django.db.models import Q

from accounts.models import ApiKey
from usage.models import Budget, Model, Monitor


class MonitorForm(forms.ModelForm):
    class Meta:
        model = Monitor
        fields = ["name", "metric", "threshold", "window_minutes", "min_calls", "model", "api_key", "channels"]
        labels = {
            "api_key": "API key",
            "window_minutes": "Window (minutes)",
            "min_calls": "At least (calls)",
            "channels": "Alert through budget",
        }
        help_texts = {
            "metric": "Error rate in percent, p95 latency in milliseconds, or calls over the same window a week"
            " before (times).",
            "min_calls": "Fewer calls in the window: not judged (and a firing rule resolves).",
            "channels": "The e-mails and webhook of this budget receive the firing and the resolve.",
        }

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.instance.tenant = tenant
        key = cast(forms.ModelChoiceField, self.fields["api_key"])
        key.queryset = ApiKey.objects.filter(tenant=tenant).order_by("name")
        key.to_field_name = "public_id"
        key.empty_label = "All keys of the tenant"
        key.error_messages["invalid_choice"] = "No such API key in this tenant."
        model = cast(forms.ModelChoiceField, self.fields["model"])
        # Platform models and the tenant's own private ones; another tenant's private model is no choice.
        model.queryset = Model.objects.filter(Q(tenant__isnull=True) | Q(tenant=tenant)).order_by("name")
        model.to_field_name = "name"
        model.empty_label = "All models"
        model.error_messages["invalid_choice"] = "No such model for this tenant."
        channels = cast(forms.ModelChoiceField, self.fields["channels"])
        channels.queryset = Budget.objects.filter(tenant=tenant).order_by("name")
        channels.empty_label = None
        channels.error_messages["invalid_choice"] = "No such budget in this tenant."
        channels.error_messages["required"] = "Choose the budget whose e-mails and webhook receive the alerts."
        self.fields["threshold"].widget.attrs["step"] = "any"

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the monitor a name.")
        return name

    def clean_threshold(self):
        threshold = self.cleaned_data["threshold"]
        if threshold is not None and threshold <= 0:
            raise forms.ValidationError("The threshold must be greater than zero.")
        return threshold

    def monitor_data(self):
        """The cleaned values as model fields, for the services."""
        return {name: self.cleaned_data[name] for name in self.Meta.fields}
