"""The pages around logging in and out say what happened in words a person reads."""

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse

from accounts.templatetags.durations import duration_words


def test_get_logout_while_logged_in_offers_the_logout_button(owner_client):
    response = owner_client.get(reverse("logout"))
    assert response.status_code == 200
    body = response.content.decode()
    assert f'<form method="post" action="{reverse("logout")}"' in body and ">Log out</button>" in body
    assert "_auth_user_id" in owner_client.session  # a GET never ends the session


def test_the_logout_page_logs_out_by_post(owner_client):
    response = owner_client.post(reverse("logout"))
    assert response.status_code == 302 and response.url == reverse("login")
    assert "_auth_user_id" not in owner_client.session


def test_get_logout_when_logged_out_goes_to_the_login_page(db):
    response = Client().get(reverse("logout"))
    assert response.status_code == 302 and response.url == reverse("login")


def test_the_lockout_page_says_the_cool_off_in_words(owner, settings):
    settings.AXES_COOLOFF_TIME = dt.timedelta(minutes=15)
    client = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = client.post(reverse("login"), {"username": owner.email, "password": "wrong-password"})
    assert response.status_code == 429
    body = response.content.decode()
    assert "Try again in 15 minutes," in body and "PT15M" not in body


@pytest.mark.parametrize(
    ("delta", "words"),
    [
        (dt.timedelta(minutes=15), "15 minutes"),
        (dt.timedelta(minutes=1), "1 minute"),
        (dt.timedelta(hours=1, minutes=30), "1 hour 30 minutes"),
        (dt.timedelta(days=2), "2 days"),
        (dt.timedelta(seconds=45), "45 seconds"),
        (dt.timedelta(0), "a moment"),
    ],
)
def test_duration_words(delta, words):
    assert duration_words(delta) == words
