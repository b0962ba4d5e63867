"""The cast every view test uses: an owner, an admin, a viewer and an outsider."""

import os
import shutil

import pytest
from django.test import Client

from accounts import services
from accounts.models import Membership, User
from usage.models import Model


def traces_dir():
    """The real traces (../shared/data beside the checkout; USAGE_TRACES_DIR or /work/shared/data
    for a clone elsewhere, e.g. CI's fresh clone under /tmp)."""
    from pathlib import Path

    from django.conf import settings

    candidates = [os.environ.get("USAGE_TRACES_DIR", ""), Path(settings.BASE_DIR).parent / "shared" / "data"]
    candidates.append("/work/shared/data")
    for candidate in candidates:
        if candidate and (Path(candidate) / "AzureLLMInferenceTrace_code.csv").is_file():
            return Path(candidate)
    return Path(candidates[1])


@pytest.fixture
def traces():
    """The Azure traces' folder; missing traces fail under REQUIRE_SERVICES, else skip."""
    folder = traces_dir()
    if not (folder / "AzureLLMInferenceTrace_code.csv").is_file():
        if required("REQUIRE_SERVICES"):
            pytest.fail(f"REQUIRE_SERVICES is set but the Azure traces are missing from {folder}")
        pytest.skip(f"Azure traces not found in {folder}")
    return folder


def required(variable):
    """True when CI demands a service: then a missing one fails instead of skipping."""
    return os.environ.get(variable, "") not in ("", "0", "false")


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    """Real hashers cost ~0.3 s per user; tests of other things need not pay it."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _empty_cache():
    """Ids repeat across rolled-back tests, so nothing cached by one test may reach the next."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _eager_celery(settings):
    """Tasks run in-process unless a test asks for the real worker (marker ``worker``)."""
    from usageproject.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def tenant(db):
    return services.tenant_create(slug="acme", name="Acme", timezone_name="UTC")


@pytest.fixture
def other_tenant(db):
    return services.tenant_create(slug="globex", name="Globex", timezone_name="Asia/Kolkata")


def _member(tenant, email, role):
    user = User.objects.create_user(email, "pw-for-tests-123")
    Membership.objects.create(user=user, tenant=tenant, role=role)
    return user


@pytest.fixture
def owner(tenant):
    return _member(tenant, "owner@acme.test", Membership.Role.OWNER)


@pytest.fixture
def admin_member(tenant):
    return _member(tenant, "admin@acme.test", Membership.Role.ADMIN)


@pytest.fixture
def viewer(tenant):
    return _member(tenant, "viewer@acme.test", Membership.Role.VIEWER)


@pytest.fixture
def outsider(other_tenant):
    return _member(other_tenant, "outsider@globex.test", Membership.Role.OWNER)


def _client_for(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def owner_client(owner):
    return _client_for(owner)


@pytest.fixture
def viewer_client(viewer):
    return _client_for(viewer)


@pytest.fixture
def outsider_client(outsider):
    return _client_for(outsider)


@pytest.fixture
def api_key(tenant, owner):
    key, _secret = services.api_key_create(tenant=tenant, name="production", created_by=owner)
    return key


@pytest.fixture
def other_api_key(other_tenant):
    key, _secret = services.api_key_create(tenant=other_tenant, name="theirs")
    return key


@pytest.fixture
def llm(db):
    return Model.objects.create(name="public/deepseek-r1", color="#7c3aed")


@pytest.fixture
def chromium_path():
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        if required("REQUIRE_BROWSER"):
            pytest.fail("REQUIRE_BROWSER is set but /usr/bin/chromium is missing")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return path
