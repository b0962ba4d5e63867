def tenancy(request):
    """The tenant being viewed (set by ``accounts.tenancy``) and the user's other tenants."""
    user = getattr(request, "user", None)
    # An API token's principal renders pages too (DRF's browsable API) but has no memberships.
    if user is None or not user.is_authenticated or not hasattr(user, "memberships"):
        return {}
    memberships = list(user.memberships.select_related("tenant").order_by("tenant__name"))
    return {
        "tenant": getattr(request, "tenant", None),
        "membership": getattr(request, "membership", None),
        "memberships": memberships,
    }
