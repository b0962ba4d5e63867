"""Settings, all from environment variables (see README "Settings").

With no environment at all this is the embedded default: SQLite next to manage.py,
Celery tasks run eagerly in-process, DEBUG on. ``DJANGO_ENV=production`` switches
to the hardened mode that passes ``manage.py check --deploy``.
"""

import datetime as dt
import ipaddress
import os
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


PRODUCTION = os.environ.get("DJANGO_ENV", "development") == "production"

DEBUG = env_bool("DEBUG", not PRODUCTION)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_ENV=production")
    SECRET_KEY = "dev-insecure-key-change-me-0123456789-abcdefghijklmnopqrstuvwxyz"
# Key for the keyed hashes of API keys and tokens. Rotating it invalidates every secret.
SECRET_HASH_KEY = os.environ.get("SECRET_HASH_KEY", SECRET_KEY)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served locally: no CDN
    "axes",
    "csp",
    "accounts",
    "usage",
]

MIDDLEWARE = [
    # First, so a request's time in usage_http_request_duration_seconds covers every layer.
    "usageproject.metrics.RequestDurationMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "usageproject.problems.UrlLengthMiddleware",
    # Its process_exception turns a lost database connection into a 503 that clients retry.
    "usageproject.problems.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "usageproject.headers.PrivacyHeadersMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page (429).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "usageproject.urls"
WSGI_APPLICATION = "usageproject.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.tenancy",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers on the embedded default: WAL lets readers run beside the
    # writer, IMMEDIATE takes the write lock at BEGIN (no lock-upgrade deadlocks) and
    # the busy timeout makes a second writer wait instead of failing "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so tests of concurrent writers get separate connections.
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("SQLITE_TEST_NAME", str(BASE_DIR / ".test-db.sqlite3"))}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Login throttling (django-axes) ---------------------------------------------------
# Every password login (/accounts/login/ and /admin/login/) goes through authenticate(), which
# AxesStandaloneBackend checks first. Failures are counted per account AND client: after
# LOGIN_FAILURE_LIMIT wrong passwords for one email from one client, that pair is locked out
# (429) for LOGIN_COOLOFF_MINUTES; the same account from elsewhere and other accounts from the
# same client are not. The REST API's tokens never call authenticate(), so they are not counted.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    # Answers only the single sign-on callback, and only with OIDC_RP_CLIENT_ID set.
    "accounts.oidc.OIDCBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_USERNAME_FORM_FIELD = "username"
# The client's address: REMOTE_ADDR, or behind the proxy only the header it sets
# (LOGIN_CLIENT_IP_HEADER, e.g. X-Real-IP), never a header a client could choose.
LOGIN_CLIENT_IP_HEADER = os.environ.get("LOGIN_CLIENT_IP_HEADER", "")
AXES_CLIENT_IP_CALLABLE = "accounts.throttling.client_ip"
# Single sign-on callbacks are no password guesses: not counted (accounts.throttling.not_a_guess).
AXES_WHITELIST_CALLABLE = "accounts.throttling.not_a_guess"

# --- Accounts and sign-in (README "Accounts and sign-in") -------------------------------
# A reset link works once and for PASSWORD_RESET_TIMEOUT seconds (default one hour).
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3600)
# Reset e-mails sent per address an hour; more requests get the same answer and no e-mail.
PASSWORD_RESET_MAX_PER_HOUR = env_int("PASSWORD_RESET_MAX_PER_HOUR", 5)
# How long the code page waits after a right password before the login starts over.
TWO_FACTOR_LOGIN_SECONDS = env_int("TWO_FACTOR_LOGIN_SECONDS", 300)
# Single sign-on with OpenID Connect (mozilla-django-oidc): on when OIDC_RP_CLIENT_ID is set.
OIDC_RP_CLIENT_ID = os.environ.get("OIDC_RP_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = os.environ.get("OIDC_RP_CLIENT_SECRET", "")
OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID)
OIDC_OP_AUTHORIZATION_ENDPOINT = os.environ.get("OIDC_OP_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = os.environ.get("OIDC_OP_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = os.environ.get("OIDC_OP_USER_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = os.environ.get("OIDC_OP_JWKS_ENDPOINT", "")
OIDC_RP_SIGN_ALGO = os.environ.get("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = "openid email"
OIDC_USE_PKCE = True
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT_SECONDS", 10)
if OIDC_ENABLED and not all(
    (OIDC_OP_AUTHORIZATION_ENDPOINT, OIDC_OP_TOKEN_ENDPOINT, OIDC_OP_USER_ENDPOINT, OIDC_OP_JWKS_ENDPOINT)
):
    raise ImproperlyConfigured("OIDC_RP_CLIENT_ID is set: set the four OIDC_OP_*_ENDPOINT variables too")
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.messages.middleware.MessageMiddleware") + 1,
    "accounts.middleware.TwoFactorRequiredMiddleware",
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Chart.js 4 comes from npm (package.json) and is served from node_modules; django-chartjs's
# own bundled Chart.js 2 / Highcharts files are never collected (its app is not installed).
STATICFILES_DIRS = [BASE_DIR / "static", ("vendor/chart.js", BASE_DIR / "node_modules" / "chart.js" / "dist")]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Cache --------------------------------------------------------------------------
# Grids, costs, panels, the rollup debounce and the API's throttle; correctness never depends on
# it. With several web processes a shared cache (CACHE_URL=redis://...) serves them all; while
# that Redis is unreachable every read goes on uncached (usageproject.cache).
CACHE_URL = os.environ.get("CACHE_URL", "")
CACHES = {
    "default": (
        {"BACKEND": "usageproject.cache.ResilientRedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
# After a failed cache call, a process leaves Redis alone this long (no connection attempt per read).
CACHE_OUTAGE_RETRY_SECONDS = env_int("CACHE_OUTAGE_RETRY_SECONDS", 5)

# --- Celery -----------------------------------------------------------------------
# No broker configured: run tasks in-process, so the embedded default needs no services
# (the in-memory transport only keeps Celery from looking for an AMQP server on localhost).
CELERY_TASK_ALWAYS_EAGER = not os.environ.get("CELERY_BROKER_URL")
# A publish runs on the request path (after an ingested batch commits): never wait on a broker
# that is down; the beat sweeps catch up with what was not enqueued.
CELERY_TASK_PUBLISH_RETRY = False
# ... and after a failed publish, a process leaves the broker alone this long (usage.outages).
BROKER_OUTAGE_RETRY_SECONDS = env_int("BROKER_OUTAGE_RETRY_SECONDS", 5)
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "memory://"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# Longer than any task may run, so Redis never re-delivers a task that is still running.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 1800)
# Alert deliveries wait on receivers the tenants choose: their own queue, so a slow receiver never
# holds the workers of rollups and evaluations. A worker started without -Q consumes both queues;
# `-Q webhooks` and `-Q celery` split them onto separate workers.
CELERY_TASK_QUEUES = [Queue("celery"), Queue("webhooks")]
CELERY_TASK_ROUTES = {
    "usage.budgets.tasks.deliver_alert": {"queue": "webhooks"},
    "usage.budgets.tasks.dispatch_deliveries": {"queue": "webhooks"},
}
CELERY_BEAT_SCHEDULE = {
    "sweep-dirty-rollups": {
        "task": "usage.tasks.sweep_dirty_rollups",
        "schedule": env_int("ROLLUP_SWEEP_SECONDS", 60),
    },
    "evaluate-budgets": {
        "task": "usage.budgets.tasks.evaluate_budgets",
        "schedule": env_int("BUDGET_EVALUATE_SECONDS", 300),
    },
    # Monitors (usage.monitors): error rate, p95 latency and usage spikes over their windows. Every
    # minute: the shortest window is 5 minutes, so a firing is late by at most a fifth of it.
    "evaluate-monitors": {
        "task": "usage.monitors.tasks.evaluate_monitors",
        "schedule": env_int("MONITOR_EVALUATE_SECONDS", 60),
    },
    "dispatch-deliveries": {
        "task": "usage.budgets.tasks.dispatch_deliveries",
        "schedule": env_int("BUDGET_DELIVERY_SWEEP_SECONDS", 10),
    },
    # PostgreSQL: the ledger's partitions of this month and LEDGER_PARTITIONS_AHEAD months ahead.
    "ledger-partitions-ahead": {"task": "usage.tasks.ledger_partitions_ahead", "schedule": 6 * 3600},
}

# --- Ledger partitions and retention (README "How it works") -------------------------
LEDGER_PARTITIONS_AHEAD = env_int("LEDGER_PARTITIONS_AHEAD", 3)
# Months of call-level detail kept before the current UTC month; 0 keeps the ledger forever.
# When set, the beat purges older months daily (manage.py purge_calls does it by hand).
CALL_RETENTION_MONTHS = env_int("CALL_RETENTION_MONTHS", 0)
if CALL_RETENTION_MONTHS > 0:
    CELERY_BEAT_SCHEDULE["purge-calls"] = {"task": "usage.tasks.purge_calls", "schedule": 24 * 3600}

# --- REST framework ---------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.AccessTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"access_token": os.environ.get("API_THROTTLE_RATE", "600/min")},
    "EXCEPTION_HANDLER": "usageproject.problems.problem_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Usage Statistics API",
    "DESCRIPTION": "Token usage, calls and estimated cost of an LLM API platform's tenants.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"MonitorMetricEnum": "usage.models.Monitor.Metric"},
    # The gateway's endpoints are plain Django views: added to the schema by hand.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "usage.api.schema.gateway_paths",
    ],
}

# --- Ingestion ----------------------------------------------------------------------
INGEST_MAX_ITEMS = env_int("INGEST_MAX_ITEMS", 1000)
INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", 4 * 1024 * 1024)
INGEST_WINDOW_PAST_DAYS = env_int("INGEST_WINDOW_PAST_DAYS", 35)
INGEST_WINDOW_FUTURE_SECONDS = env_int("INGEST_WINDOW_FUTURE_SECONDS", 300)
# Path plus query string; gunicorn.conf.py lets longer request lines through to answer 414 here.
MAX_URL_LENGTH = env_int("MAX_URL_LENGTH", 4096)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(INGEST_MAX_BODY_BYTES, 2_621_440)

# --- Budgets and alerts (README "Budgets and alerts") ---------------------------------
# keys/verify re-evaluates a budget state older than this, so its answer is never older.
BUDGET_STATE_MAX_AGE_SECONDS = env_int("BUDGET_STATE_MAX_AGE_SECONDS", 120)
BUDGET_DELIVERY_MAX_ATTEMPTS = env_int("BUDGET_DELIVERY_MAX_ATTEMPTS", 8)
BUDGET_DELIVERY_BACKOFF_SECONDS = env_int("BUDGET_DELIVERY_BACKOFF_SECONDS", 5)
BUDGET_DELIVERY_BACKOFF_MAX_SECONDS = env_int("BUDGET_DELIVERY_BACKOFF_MAX_SECONDS", 600)
# The whole of one webhook attempt (resolution, connection, TLS, every read): not per read.
BUDGET_WEBHOOK_TIMEOUT_SECONDS = env_int("BUDGET_WEBHOOK_TIMEOUT_SECONDS", 10)
# A delivery handed to the queue but not started within this is handed out again (a lost message).
BUDGET_DELIVERY_QUEUE_LEASE_SECONDS = env_int("BUDGET_DELIVERY_QUEUE_LEASE_SECONDS", 120)
# Per tenant: deliveries queued or running at once, and handed out per minute (the rest wait).
BUDGET_DELIVERY_TENANT_CONCURRENCY = env_int("BUDGET_DELIVERY_TENANT_CONCURRENCY", 2)
BUDGET_DELIVERY_TENANT_RATE_PER_MINUTE = env_int("BUDGET_DELIVERY_TENANT_RATE_PER_MINUTE", 30)
# Webhooks never reach non-global addresses (loopback, private, link-local, metadata ...) except
# in these networks, e.g. "10.20.0.0/16" for a receiver inside the platform's own network.
WEBHOOK_ALLOWED_NETWORKS = env_list("WEBHOOK_ALLOWED_NETWORKS", [])
for _network in WEBHOOK_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"WEBHOOK_ALLOWED_NETWORKS: {_exc}") from None

# --- Health and metrics (README "Health and metrics") -----------------------------------
# /metrics answers a service token, and clients in these networks without one (e.g. the
# Prometheus server's "10.0.0.0/8"); nobody by default.
METRICS_ALLOWED_NETWORKS = []
for _network in env_list("METRICS_ALLOWED_NETWORKS", []):
    try:
        METRICS_ALLOWED_NETWORKS.append(ipaddress.ip_network(_network, strict=False))
    except ValueError as _exc:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {_exc}") from None
# Per-tenant series of the database gauges: one series per tenant each, so off by default.
METRICS_TENANT_LABELS = env_bool("METRICS_TENANT_LABELS", False)
# /readyz: the longest it waits for the database, the cache and the broker (checked at once).
READYZ_TIMEOUT_SECONDS = float(os.environ.get("READYZ_TIMEOUT_SECONDS") or 1.5)

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "usage-statistics@localhost")

# --- Exports (README "Exports") --------------------------------------------------------
# FOCUS: who provides, publishes and invoices the service, and its name, in every row.
FOCUS_PROVIDER_NAME = os.environ.get("FOCUS_PROVIDER_NAME", "LLM API Platform")
FOCUS_SERVICE_NAME = os.environ.get("FOCUS_SERVICE_NAME", "LLM API")
# Warehouse export to S3-compatible storage; the beat task runs only with a bucket set.
WAREHOUSE_S3_ENDPOINT_URL = os.environ.get("WAREHOUSE_S3_ENDPOINT_URL", "") or None
WAREHOUSE_S3_REGION = os.environ.get("WAREHOUSE_S3_REGION", "us-east-1")
WAREHOUSE_S3_ACCESS_KEY_ID = os.environ.get("WAREHOUSE_S3_ACCESS_KEY_ID", "") or None
WAREHOUSE_S3_SECRET_ACCESS_KEY = os.environ.get("WAREHOUSE_S3_SECRET_ACCESS_KEY", "") or None
WAREHOUSE_BUCKET = os.environ.get("WAREHOUSE_BUCKET", "")
WAREHOUSE_PREFIX = os.environ.get("WAREHOUSE_PREFIX", "usage")
# Closed days the beat exports (re)checks each run: complete partitions are skipped.
WAREHOUSE_DAYS_BACK = env_int("WAREHOUSE_DAYS_BACK", 3)
if WAREHOUSE_BUCKET:
    CELERY_BEAT_SCHEDULE["warehouse-export"] = {
        "task": "usage.tasks.warehouse_export",
        "schedule": env_int("WAREHOUSE_EXPORT_SECONDS", 3600),
    }

# --- Security -------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Content-Security-Policy (django-csp): scripts, styles, images, fonts and requests from this
# origin only; no inline script, no event handler attribute, no eval, no inline style attribute
# (the templates' bars and swatches are SVG). Chart data travels in json_script blocks, which
# are data, not code. One narrow relaxation: the Swagger UI page (usage.api.docs).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
# Browser features no page of the product uses (usageproject.headers).
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=(), fullscreen=(self)"
)
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Probes and scrapers inside the platform's network speak plain HTTP to the pod.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
