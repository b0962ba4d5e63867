"""What every read endpoint starts from: the tenant that asks, and its filters."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, serializers

from accounts.models import AccessToken, Membership
from accounts.tenancy import tenant_for_request
from usage.reporting.filters import UsageFilterSet
from usage.reporting.query import InvalidQuery, UsageQuery


def api_tenant(request):
    """The tenant this request reads.

    With an access token it is the token's tenant (a ``tenant`` parameter naming another one
    is a 404). With a browser session it is the ``tenant`` slug, which may be left out by a
    member of exactly one tenant; a tenant the user does not belong to is a 404.
    """
    slug = request.query_params.get("tenant")
    if isinstance(request.auth, AccessToken):
        tenant = request.auth.tenant
        if slug and slug != tenant.slug:
            raise exceptions.NotFound("No such tenant.")
        return tenant
    if slug:
        return tenant_for_request(request, slug)
    memberships = list(Membership.objects.select_related("tenant").filter(user_id=request.user.pk)[:2])
    if len(memberships) == 1:
        return memberships[0].tenant
    if not memberships:
        raise exceptions.NotFound("You are not a member of any tenant.")
    raise exceptions.ValidationError({"tenant": "You belong to several tenants: name one with tenant=<slug>."})


def filters_or_errors(params, tenant):
    """``(UsageFilters, {})`` through the shared FilterSet, or ``(None, {parameter: [messages]})``."""
    try:
        return UsageQuery.from_params(tenant, params).filters, {}
    except InvalidQuery as invalid:
        return None, invalid.errors


def usage_query(request, tenant, **options):
    """The ``UsageQuery`` of an API request (``options``: its bucket and grouping); invalid
    parameters are a 400 naming each one."""
    try:
        return UsageQuery.from_params(tenant, request.query_params, **options)
    except InvalidQuery as invalid:
        raise exceptions.ValidationError(invalid.errors) from None


def validated(serializer_class, request):
    """An endpoint's own query parameters, checked by a serializer (400 naming the parameter)."""
    # Empty means "the default", as in the page's URLs.
    data = {name: value for name, value in request.query_params.items() if value != ""}
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


@extend_schema_field({"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "maxLength": 0}]})
class OptionalDateField(serializers.DateField):
    """A date, or empty for none: the page's filter bar sends ``start=&end=`` when they are unset."""


class TenantParams(serializers.Serializer):
    tenant = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Tenant slug. Needed only with a browser session of a member of several tenants; "
        "with an access token the tenant is the token's.",
    )


class CommonParams(TenantParams):
    """The filters every usage endpoint takes; the same as the Usage Statistics page's URL."""

    start = OptionalDateField(
        required=False,
        help_text="First local date (YYYY-MM-DD) in the tenant's time zone, inclusive, between 1970-01-01 "
        "and 9998-12-31. Given alone, the range is that one day. Overrides preset.",
    )
    end = OptionalDateField(
        required=False,
        help_text="Last local date (YYYY-MM-DD), inclusive, between 1970-01-01 and 9998-12-31; not before start "
        "and at most 366 days after it (else 400).",
    )
    preset = serializers.ChoiceField(
        choices=UsageFilterSet.base_filters["preset"].extra["choices"],
        allow_blank=True,
        required=False,
        help_text="A range of local dates ending today, used when start and end are absent. Default last_2_weeks.",
    )
    api_key = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Only calls made with this API key (its public id, see /api/v1/api-keys). It must be one of "
        "the tenant's keys: an unknown key or another tenant's is a 400.",
    )
    model = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Only calls to this model (its name, see /api/v1/models): a platform model or one of the "
        "tenant's own; an unknown model or another tenant's private one is a 400.",
    )
