"""Clients of the REST API for tests: one per access token, as an integration would hold it."""

from django.test import Client

from accounts import services


def token_client(tenant, name="bi"):
    _token, secret = services.access_token_create(tenant=tenant, name=name)
    return Client(headers={"Authorization": f"Bearer {secret}"})


def token_and_client(tenant, name="bi"):
    token, secret = services.access_token_create(tenant=tenant, name=name)
    return token, Client(headers={"Authorization": f"Bearer {secret}"})


def csv_body(response):
    return b"".join(response.streaming_content).decode("utf-8")
