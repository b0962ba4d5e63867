"""The budget form: the page, the admin-free command and (through them) every way a budget is made."""

import re
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.core.validators import EmailValidator, URLValidator

from accounts.models import ApiKey
from usage.budgets import egress
from usage.budgets.currencies import is_currency
from usage.models import MAX_BUDGET_THRESHOLDS, Budget

DEFAULT_THRESHOLDS = [50, 80, 100]
MAX_AMOUNT = Decimal("1e15")
WEBHOOK_REFUSALS = {
    egress.REFUSED: (
        "The webhook URL points to a private, loopback, link-local or otherwise internal address;"
        " alerts are only sent to public addresses."
    ),
    "DNS lookup failed": "The webhook URL's host name does not resolve.",
    "timed out": "The webhook URL's host name does not resolve.",
}


class BudgetForm(forms.ModelForm):
    thresholds = forms.CharField(
        required=False,
        initial="50, 80, 100",
        help_text="Up to 10 percentages 1-1000, comma-separated. Default 50, 80, 100.",
    )
    emails = forms.CharField(required=False, label="E-mail", help_text="Comma-separated addresses to alert.")
    webhook_url = forms.CharField(required=False, label="Webhook URL", help_text="http(s) URL; alerts are signed.")

    class Meta:
        model = Budget
        fields = ["name", "api_key", "metric", "amount", "currency", "period", "week_start", "thresholds", "enforce"]
        fields += ["emails", "webhook_url"]
        labels = {"api_key": "API key", "week_start": "Week starts on"}
        widgets = {
            "week_start": forms.Select(
                choices=list(enumerate(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]))
            )
        }

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        field = cast(forms.ModelChoiceField, self.fields["api_key"])
        field.queryset = ApiKey.objects.filter(tenant=tenant).order_by("name")
        field.to_field_name = "public_id"
        field.empty_label = "All keys of the tenant"
        field.error_messages["invalid_choice"] = "No such API key in this tenant."
        self.fields["currency"].initial = "USD"
        self.fields["amount"].help_text = "Currency amount for a cost budget, number of tokens for a token budget."
        if self.instance.pk:
            self.initial["thresholds"] = ", ".join(str(t) for t in self.instance.thresholds)

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the budget a name.")
        return name

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount is None or amount <= 0:
            raise forms.ValidationError("The amount must be greater than zero.")
        if amount >= MAX_AMOUNT:
            raise forms.ValidationError("The amount is too large.")
        return amount

    def clean_week_start(self):
        value = self.cleaned_data.get("week_start")
        if value is None:
            return 0
        if not 0 <= value <= 6:
            raise forms.ValidationError("Choose a weekday: 0 = Monday ... 6 = Sunday.")
        return value

    def clean_currency(self):
        return (self.cleaned_data.get("currency") or "").strip().upper()

    def clean_thresholds(self):
        text = (self.cleaned_data.get("thresholds") or "").strip()
        if not text:
            return list(DEFAULT_THRESHOLDS)
        values = []
        for part in text.replace(";", ",").split(","):
            part = part.strip().rstrip("%")
            if not part:
                continue
            # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
            if not re.fullmatch(r"[0-9]{1,4}", part) or not 1 <= int(part) <= 1000:
                raise forms.ValidationError(f"“{part}” is not a whole percentage between 1 and 1000.")
            values.append(int(part))
        if len(set(values)) > MAX_BUDGET_THRESHOLDS:
            raise forms.ValidationError(f"At most {MAX_BUDGET_THRESHOLDS} thresholds per budget.")
        return sorted(set(values))

    def clean_emails(self):
        addresses = [a.strip() for a in (self.cleaned_data.get("emails") or "").split(",") if a.strip()]
        validate = EmailValidator(message="Enter valid e-mail addresses, separated by commas.")
        for address in addresses:
            validate(address)
        return ", ".join(addresses)

    def clean_webhook_url(self):
        url = (self.cleaned_data.get("webhook_url") or "").strip()
        if not url:
            return ""
        if not url.lower().startswith(("http://", "https://")):
            raise forms.ValidationError("The webhook URL must start with http:// or https://.")
        URLValidator(schemes=["http", "https"], message="Enter a valid webhook URL.")(url)
        try:
            egress.check_url(url)
        except egress.Failure as exc:
            raise forms.ValidationError(WEBHOOK_REFUSALS.get(exc.category, "Enter a valid webhook URL.")) from None
        return url

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        metric, currency = data.get("metric"), data.get("currency", "")
        if metric == Budget.Metric.COST:
            if not currency:
                self.add_error("currency", "A cost budget needs a currency, e.g. USD.")
            elif not is_currency(currency):
                self.add_error("currency", f"“{currency}” is not an ISO 4217 currency code.")
        elif metric == Budget.Metric.TOKENS:
            data["currency"] = ""
            amount = data.get("amount")
            if amount is not None and amount != amount.to_integral_value():
                self.add_error("amount", "A token budget is a whole number of tokens.")
        return data

    def budget_data(self):
        """The cleaned values as model fields, for the services."""
        return {name: self.cleaned_data[name] for name in self.Meta.fields}
