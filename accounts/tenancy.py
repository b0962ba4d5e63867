from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from .models import Membership, Tenant


def tenant_for_request(request: HttpRequest, slug: str, *, write: bool = False) -> Tenant:
    """The tenant ``slug`` if the user belongs to it, else 404; 403 for a viewer who writes.

    Every tenant view starts here, so an outsider can never tell a foreign tenant from a
    missing one. The membership is kept on the request for templates.
    """
    membership = (
        Membership.objects.select_related("tenant").filter(user_id=request.user.pk or 0, tenant__slug=slug).first()
    )
    if membership is None:
        raise Http404("No such tenant")
    if write and not membership.can_manage:
        raise PermissionDenied("Viewers cannot change this tenant's keys or tokens")
    request.tenant = membership.tenant  # type: ignore[attr-defined]  # read by templates and views
    request.membership = membership  # type: ignore[attr-defined]
    return membership.tenant
