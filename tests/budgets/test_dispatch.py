"""Deliveries leave the web process and are handed to workers per tenant: their own queue, at most
BUDGET_DELIVERY_TENANT_CONCURRENCY queued or running, BUDGET_DELIVERY_TENANT_RATE_PER_MINUTE per
minute, retries when their back-off is over, and again when a lease runs out (a dead worker)."""

import datetime as dt
import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from usage.budgets import services, tasks
from usage.models import AlertDelivery
from usageproject.celery import app

from .helpers import budget


@pytest.fixture
def queued(monkeypatch):
    """A broker instead of eager Celery: what would be published to the workers, and nothing run."""
    sent = []
    monkeypatch.setattr(app.conf, "task_always_eager", False)
    monkeypatch.setattr(tasks.deliver_alert, "apply_async", lambda args, **options: sent.append(tuple(args)))
    return sent


def _deliveries(b, count):
    return [AlertDelivery.objects.create(budget=b, channel="webhook", delivery_id=uuid.uuid4()) for _ in range(count)]


def test_deliveries_are_routed_to_their_own_queue():
    route = app.amqp.router.route({}, "usage.budgets.tasks.deliver_alert")
    assert route["queue"].name == "webhooks"
    assert app.amqp.router.route({}, "usage.budgets.tasks.evaluate_tenant_budgets")["queue"].name == "celery"
    assert {q.name for q in app.conf.task_queues} == {"celery", "webhooks"}  # a plain worker consumes both


def test_send_test_only_queues_a_delivery_for_the_worker(owner_client, tenant, receiver, queued, committed):
    b = budget(tenant, webhook_url=receiver.url)
    response = committed(owner_client.post, reverse("budgets:test", kwargs={"slug": tenant.slug, "pk": b.pk}))
    assert response.status_code == 302 and receiver.requests == []  # nothing posted from the web process
    delivery = AlertDelivery.objects.get()
    assert queued == [(delivery.pk, str(delivery.dispatch_id))] and delivery.status == "pending"
    html = owner_client.get(reverse("budgets:list", kwargs={"slug": tenant.slug})).content.decode()
    assert '<td class="delivery-result">queued</td>' in html
    tasks.deliver_alert.run(*queued[0])  # the worker
    html = owner_client.get(reverse("budgets:list", kwargs={"slug": tenant.slug})).content.decode()
    assert '<td class="delivery-result">HTTP 200</td>' in html and len(receiver.requests) == 1


def test_a_tenant_has_at_most_the_concurrency_cap_queued_or_running(tenant, other_tenant, queued, committed, settings):
    settings.BUDGET_DELIVERY_TENANT_CONCURRENCY = 2
    mine = _deliveries(budget(tenant, webhook_url="http://127.0.0.1:9/"), 5)
    theirs = _deliveries(budget(other_tenant, webhook_url="http://127.0.0.1:9/"), 1)
    assert committed(services.deliveries_sweep) == 3
    assert [pk for pk, _ in queued] == [mine[0].pk, mine[1].pk, theirs[0].pk]
    assert committed(services.deliveries_dispatch, tenant_id=tenant.pk) == 0  # two still in flight
    AlertDelivery.objects.filter(pk=mine[0].pk).update(status="delivered")  # one finished
    assert committed(services.deliveries_dispatch, tenant_id=tenant.pk) == 1
    assert queued[-1][0] == mine[2].pk


def test_a_tenant_is_rate_limited_per_minute(tenant, queued, committed, settings):
    settings.BUDGET_DELIVERY_TENANT_CONCURRENCY, settings.BUDGET_DELIVERY_TENANT_RATE_PER_MINUTE = 100, 3
    _deliveries(budget(tenant, webhook_url="http://127.0.0.1:9/"), 5)
    now = timezone.now()
    assert committed(services.deliveries_dispatch, tenant_id=tenant.pk, now=now) == 3
    AlertDelivery.objects.update(status="delivered")
    AlertDelivery.objects.filter(dispatch_id__isnull=True).update(status="pending")
    assert committed(services.deliveries_dispatch, tenant_id=tenant.pk, now=now + dt.timedelta(seconds=30)) == 0
    assert committed(services.deliveries_dispatch, tenant_id=tenant.pk, now=now + dt.timedelta(seconds=61)) == 2
    assert len(queued) == 5


def test_a_failed_attempt_waits_for_its_back_off_then_the_sweep_hands_it_out(
    tenant, loopback_allowed, queued, committed, settings
):
    settings.BUDGET_DELIVERY_BACKOFF_SECONDS = 5
    from .receivers import free_port

    [delivery] = _deliveries(budget(tenant, webhook_url=f"http://127.0.0.1:{free_port()}/"), 1)
    committed(services.deliveries_sweep)
    committed(tasks.deliver_alert.run, *queued.pop())
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.log[-1]["error"] == "connection failed"
    assert committed(services.deliveries_sweep) == 0 and queued == []
    later = delivery.next_attempt_at + dt.timedelta(seconds=1)
    assert 4 <= (delivery.next_attempt_at - timezone.now()).total_seconds() <= 5
    assert committed(services.deliveries_sweep, now=later) == 1


def test_a_lease_run_out_is_handed_out_again_and_the_old_message_does_nothing(tenant, queued, committed):
    [delivery] = _deliveries(budget(tenant, webhook_url="http://127.0.0.1:9/"), 1)
    committed(services.deliveries_sweep)
    old = queued.pop()
    later = timezone.now() + dt.timedelta(hours=1)  # the worker that held it died: its lease ran out
    assert committed(services.deliveries_sweep, now=later) == 1
    new = queued.pop()
    assert new[1] != old[1]
    assert tasks.deliver_alert.run(*old) == "pending"
    delivery.refresh_from_db()
    assert delivery.attempts == 0 and delivery.log == []
