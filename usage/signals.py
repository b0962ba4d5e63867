"""Wiring only: a saved tenant whose time zone changed hands over to ``rollups.recompute``.

The rule itself (which days move, under which lock) is ``recompute.tenant_zone_changed``; the
signal is only how every way of saving a tenant (admin, shell, a service) reaches it.
"""

from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from accounts.models import Tenant
from usage.rollups import recompute


@receiver(pre_save, sender=Tenant)
def remember_old_timezone(sender, instance, **kwargs):
    instance._previous_timezone = (
        Tenant.objects.filter(pk=instance.pk).values_list("timezone", flat=True).first() if instance.pk else None
    )


@receiver(post_save, sender=Tenant)
def recompute_after_timezone_change(sender, instance, created, **kwargs):
    previous = getattr(instance, "_previous_timezone", None)
    if not created and previous is not None and previous != instance.timezone:
        recompute.tenant_zone_changed(tenant=instance)
