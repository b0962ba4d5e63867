def tenancy(request):
    """The tenant being viewed (set by ``accounts.tenancy``) and the user's other tenants."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    memberships = list(user.memberships.select_related("tenant").order_by("tenant__name"))
    return {
        "tenant": getattr(request, "tenant", None),
        "membership": getattr(request, "membership", None),
        "memberships": memberships,
    }
