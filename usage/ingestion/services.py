"""Writes to the ledger: ingestion of reported calls, from the gateway's API and from files.

Both paths apply the same rules (``usage.ingestion.validation`` for the values, ``_checked`` for keys,
models and the window) and differ only in how rows reach the table: the API inserts a batch
with one ``INSERT .. ON CONFLICT DO NOTHING RETURNING``; the import on PostgreSQL copies a
chunk into a staging table and inserts it with one set-based statement.

A request id is unique per tenant, across every partition of the ledger: each writer first
claims (tenant, request id) in ``CallRequest`` with ``ON CONFLICT DO NOTHING RETURNING``, in
the same statement (PostgreSQL) or transaction (SQLite) as the insert of the calls, and only
the calls whose claim is new are inserted. Items are judged as if they arrived one by one: the
first to claim a request id is stored, a later one with the same content is a duplicate, one
with other content (another instant included, even in another month) is a conflict and is
rejected, leaving the stored call as it was. Calls before the retention horizon
(``usage.ledger.retention``) are rejected: their claims were purged with them.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import psycopg
import psycopg.copy
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import credential_touch
from usage.ingestion.signals import calls_stored
from usage.ingestion.validation import error, request_id_of, validate_call
from usage.ledger import partitions, retention
from usage.models import CallRecord, CallRequest, Model, ModelAlias
from usage.pricing_rules import SERVICE_TIER_POSITION
from usage.rollups import increments, performance, pricing

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Sequence

    from django.db.backends.utils import CursorWrapper

    from accounts.models import Tenant
    from usage.ingestion.validation import Call, FieldError

    class ItemError(FieldError):
        """A rejection as the API reports it: ``FieldError`` and the item it is about."""

        index: int  # position in the batch (API) or line in the file
        request_id: str | None

    # The ledger's columns in _COLUMNS order: tenant, key, model, instant, the six counts (input,
    # output, cached, reasoning, cache writes, one-hour cache writes), the performance (duration,
    # time to first token, status, error type, HTTP status), service tier, request id.
    Values = tuple[
        int, int, int, dt.datetime, int, int, int | None, int | None, int | None, int | None,
        int | None, int | None, str | None, str | None, int | None, str | None, str,
    ]  # fmt: skip
    Window = tuple[dt.datetime, dt.datetime]  # earliest and latest instant accepted
    Candidate = tuple[int, ApiKey, Call]  # position, key, call
    ModelIds = dict[str, tuple[int, int | None]]  # model name -> (id, tenant id or None if public)
    # (tenant id, request id): an Identity, or the plain tuple the database returns for one.
    IdentityKey = tuple[int, str]

# Bumping "last used" on every batch would write the same key or token row many times a second.
_SQLITE_ROWS_PER_STATEMENT = 500  # 17 values a row stays far below SQLite's 32,766 variables
_RETRIES = 3
_EPOCH = dt.datetime(1, 1, 1, tzinfo=dt.UTC)


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[ItemError] = field(default_factory=list)

    def reject(self, index: int, request_id: str | None, errors: Iterable[FieldError]) -> None:
        self.rejected += 1
        self.errors.extend({"index": index, "request_id": request_id, **item} for item in errors)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Identity(NamedTuple):
    """What is unique in the ledger (and claimed first): a tenant's request id."""

    tenant_id: int
    request_id: str


class Content(NamedTuple):
    """What "same content" compares between two reports of one request id (the ledger's columns
    ``_CONTENT_COLUMNS``, in this order)."""

    api_key_id: int
    model_id: int
    occurred_at: dt.datetime
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int | None
    reasoning_tokens: int | None
    cache_creation_input_tokens: int | None
    cache_creation_1h_input_tokens: int | None
    # A re-sent call whose performance differs is another report: a conflict, as for the counts.
    duration_ms: int | None
    time_to_first_token_ms: int | None
    status: str | None
    error_type: str | None
    http_status: int | None
    service_tier: str | None


class Row(NamedTuple):
    """A call that passed every check, as tuples: rows are handled by the thousand."""

    position: int  # index in the batch (API) or line in the file
    key: ApiKey
    identity: Identity
    content: Content
    values: Values  # the ledger's columns in _COLUMNS order

    @classmethod
    def build(cls, index: int, key: ApiKey, key_id: int, tenant_id: int, model_id: int, call: Call) -> Row:
        content = Content(
            key_id,
            model_id,
            call.occurred_at,
            call.input_tokens,
            call.output_tokens,
            call.cached_input_tokens,
            call.reasoning_tokens,
            call.cache_creation_input_tokens,
            call.cache_creation_1h_input_tokens,
            call.duration_ms,
            call.time_to_first_token_ms,
            call.status,
            call.error_type,
            call.http_status,
            call.service_tier,
        )
        return cls(index, key, Identity(tenant_id, call.request_id), content, (tenant_id, *content, call.request_id))

    @property
    def request_id(self) -> str:
        return self.identity.request_id

    @property
    def occurred_at(self) -> dt.datetime:
        return self.content.occurred_at


@dataclass
class _Outcome:
    accepted: int = 0
    duplicates: int = 0
    conflicts: list[Row] = field(default_factory=list)
    # The stored calls' hourly buckets (``usage.rollups.increments``).
    buckets: dict[increments.HourKey, increments.Sums] = field(default_factory=dict)
    # Their performance buckets (``usage.rollups.performance``), when added in Python.
    stats: dict[performance.StatKey, int] = field(default_factory=dict)
    # Their pricing classes (``usage.rollups.pricing``), when added in Python.
    classes: dict[pricing.ClassKey, list[int]] = field(default_factory=dict)


@dataclass
class CheckedCalls:
    """Calls checked against keys, models and the window: ``rows`` may be stored, the rejected
    ones are in ``result``. Only the ledger's own verdicts (duplicate, conflict) remain."""

    rows: list[Row]
    tenants: dict[int, Tenant]  # tenant id -> Tenant of the rows' keys
    result: IngestResult
    stream: bytes | None = None  # PostgreSQL: the rows as a binary COPY stream for the staging table


def call_records_ingest(*, items: Iterable[object], now: dt.datetime | None = None) -> IngestResult:
    """Store calls the gateway reported (raw JSON items); ``occurred_at`` must lie in the window."""
    now = now or timezone.now()
    window = (
        now - dt.timedelta(days=settings.INGEST_WINDOW_PAST_DAYS),
        now + dt.timedelta(seconds=settings.INGEST_WINDOW_FUTURE_SECONDS),
    )
    result = IngestResult()
    calls: list[tuple[int, Call]] = []
    for index, raw in enumerate(items):
        call, errors = validate_call(raw)
        if errors:
            result.reject(index, request_id_of(raw), errors)
        else:  # no errors, so call is a Call (validate_call's contract; a test to narrow it would run per item)
            calls.append((index, call))  # type: ignore[arg-type]
    rows, tenants = _checked(calls, window=window, tenant=None, result=result)
    return _stored(CheckedCalls(rows, tenants, result), now=now, bulk=False)


def call_records_check(*, calls: Sequence[tuple[int, Call]], tenant: Tenant | None = None) -> CheckedCalls:
    """Check ``(line, Call)`` pairs of a file (already through ``usage.ingestion.validation.validate_call``)
    against keys and models. Only reads, and adds unknown models to the catalog.

    No window: history is the point of an import. With ``tenant``, keys of any other tenant
    are rejected. On PostgreSQL the rows are also encoded for COPY, so that storing them is
    little more than sending bytes: an import runs this a chunk ahead, in its reader thread.
    """
    result = IngestResult()
    rows, tenants = _checked(calls, window=None, tenant=tenant, result=result)
    stream = _staging_stream(rows) if rows and connection.vendor == "postgresql" else None
    return CheckedCalls(rows, tenants, result, stream)


def call_records_store(checked: CheckedCalls, *, now: dt.datetime | None = None) -> IngestResult:
    """Store checked calls from a file in one transaction; on PostgreSQL via COPY and a staging table."""
    return _stored(checked, now=now or timezone.now(), bulk=True)


def _stored(checked: CheckedCalls, *, now: dt.datetime, bulk: bool) -> IngestResult:
    result, rows = checked.result, checked.rows
    if rows:
        partitions.partitions_ensure(row.occurred_at for row in rows)
        outcome = _with_retry(lambda: _store(checked, now=now, bulk=bulk))
        result.accepted, result.duplicates = outcome.accepted, outcome.duplicates
        for row in outcome.conflicts:
            result.reject(row.position, row.request_id, [_CONFLICT])
        _touch_keys(rows, conflicts=outcome.conflicts, now=now)
        if outcome.accepted:  # budgets subscribe (usage.budgets.receivers) and evaluate after the commit
            calls_stored.send(sender=CallRecord, tenant_ids=checked.tenants)
    result.errors.sort(key=lambda item: item["index"])
    return result


_CONFLICT = error(
    "request_id", "conflict", "A call with this request_id and other content is stored; it was left unchanged."
)
_MODEL_NOT_AVAILABLE = error("model", "model_not_available", "This model is private to another tenant.")


def _checked(
    calls: Sequence[tuple[int, Call]], *, window: Window | None, tenant: Tenant | None, result: IngestResult
) -> tuple[list[Row], dict[int, Tenant]]:
    """The calls whose key, time and model allow storing them, as rows, and the tenants of their keys."""
    keys = _api_keys({call.api_key for _, call in calls})
    horizon = retention.purge_horizon() if calls else None
    candidates: list[Candidate] = []
    for index, call in calls:
        key = keys.get(call.api_key)
        errors = _key_errors(key, call, tenant) + _window_errors(call, window) + _horizon_errors(call, horizon)
        if errors:
            result.reject(index, call.request_id, errors)
        else:  # no errors, so key is not None (_key_errors rejects an unknown key)
            candidates.append((index, key, call))  # type: ignore[arg-type]
    models, candidates = _models(candidates, result)
    # Plain ids, read once: a foreign key's *_id is a descriptor call on every access.
    key_ids = {public_id: (key.id, key.tenant_id) for public_id, key in keys.items()}
    rows: list[Row] = []
    for index, key, call in candidates:
        model_id, model_tenant_id = models[call.model]
        key_id, tenant_id = key_ids[call.api_key]
        if model_tenant_id is not None and model_tenant_id != tenant_id:
            result.reject(index, call.request_id, [_MODEL_NOT_AVAILABLE])
        else:
            rows.append(Row.build(index, key, key_id, tenant_id, model_id, call))
    return rows, {key.tenant_id: key.tenant for key in keys.values()}


def _api_keys(public_ids: Iterable[str]) -> dict[str, ApiKey]:
    keys = ApiKey.objects.filter(public_id__in=public_ids).select_related("tenant").order_by()
    return {key.public_id: key for key in keys}


def _key_errors(key: ApiKey | None, call: Call, tenant: Tenant | None) -> tuple[FieldError, ...]:
    if key is None:
        return (error("api_key", "unknown_api_key", "No API key has this public id."),)
    if tenant is not None and key.tenant_id != tenant.pk:
        return (error("api_key", "wrong_tenant", f"The key does not belong to tenant {tenant.slug}."),)
    if key.revoked_at is None and key.expires_at is None:
        return ()
    # A key revoked (or expired) after the call still counts it: the call was legitimate.
    status = key.status_at(call.occurred_at)
    if status == "revoked":
        return (error("api_key", "api_key_revoked", "The key was revoked at or before occurred_at."),)
    if status == "expired":
        return (error("api_key", "api_key_expired", "The key had expired at occurred_at."),)
    return ()


def _window_errors(call: Call, window: Window | None) -> tuple[FieldError, ...]:
    if window is None:
        return ()
    earliest, latest = window
    if call.occurred_at < earliest:
        days = settings.INGEST_WINDOW_PAST_DAYS
        return (error("occurred_at", "too_old", f"More than {days} days ago; older history is imported from files."),)
    if call.occurred_at > latest:
        seconds = settings.INGEST_WINDOW_FUTURE_SECONDS
        return (error("occurred_at", "in_future", f"More than {seconds} seconds ahead of the server's clock."),)
    return ()


def _horizon_errors(call: Call, horizon: dt.datetime | None) -> tuple[FieldError, ...]:
    if horizon is None or call.occurred_at >= horizon:
        return ()
    detail = f"Call-level detail before {horizon:%Y-%m-%d} (UTC) was purged; calls before it are not stored."
    return (error("occurred_at", "purged", detail),)


def _models(candidates: list[Candidate], result: IngestResult) -> tuple[ModelIds, list[Candidate]]:
    """The candidates' models as ``name -> (id, tenant id)``, unknown names added unlisted; and the
    candidates that are left.

    Only calls that are otherwise fine add a model, so a rejected call changes nothing. That
    includes a conflict: a call naming a model never seen before cannot match a stored call,
    so if its request id is taken it is rejected here, before its model is created.
    """
    found = _model_ids({call.model for _, _, call in candidates})
    if all(call.model in found for _, _, call in candidates):
        return found, candidates
    new = {(key.tenant_id, call.request_id) for _, key, call in candidates if call.model not in found}
    taken = _claims(new).keys()
    kept: list[Candidate] = []
    for index, key, call in candidates:
        if call.model not in found and (key.tenant_id, call.request_id) in taken:
            result.reject(index, call.request_id, [_CONFLICT])
        else:
            kept.append((index, key, call))
    missing = {call.model for _, _, call in kept} - found.keys()
    # Committed on its own: a concurrent batch reporting the same new model must not
    # wait for this batch's whole transaction, and an admin sees the model either way.
    Model.objects.bulk_create([Model(name=name, listed=False) for name in sorted(missing)], ignore_conflicts=True)
    found.update(_model_ids(missing))
    return found, kept


def _model_ids(names: Iterable[str]) -> ModelIds:
    """The models of ``names``: by a model's name, else by an alias (``ModelAlias``)."""
    wanted = set(names)
    rows = Model.objects.filter(name__in=wanted).order_by().values_list("name", "id", "tenant_id")
    found: ModelIds = {name: (model_id, tenant_id) for name, model_id, tenant_id in rows}
    if len(found) < len(wanted):
        aliases = ModelAlias.objects.filter(name__in=wanted - found.keys()).order_by()
        found.update(
            (name, (model_id, tenant_id))
            for name, model_id, tenant_id in aliases.values_list("name", "model_id", "model__tenant_id")
        )
    return found


def model_names_choose(choices: Sequence[tuple[object, Sequence[object]]]) -> list[object]:
    """For each (api key's public id, candidate names): the first name the catalog knows (by name or
    alias) as a model the key's tenant may use; else the first name that is not another tenant's
    private model; else the first (None without any). Nothing is added to the catalog.

    Names and aliases are global: another tenant's private model must not win over a public
    model that the same call also names (the call would be rejected as model_not_available).
    """
    names = {name for _key, candidates in choices for name in candidates if isinstance(name, str)}
    owners: dict[object, int | None] = (
        {name: owner for name, (_id, owner) in _model_ids(names).items()} if names else {}
    )
    key_ids = {key for key, _candidates in choices if isinstance(key, str)}
    tenants = (
        dict(ApiKey.objects.filter(public_id__in=key_ids).values_list("public_id", "tenant_id")) if key_ids else {}
    )
    chosen: list[object] = []
    for key, candidates in choices:
        tenant_id = tenants.get(key) if isinstance(key, str) else None
        # owners.get is None for a public model and for a name the catalog does not know.
        usable = [name for name in candidates if owners.get(name) in (None, tenant_id)]
        known = [name for name in usable if name in owners]
        chosen.append(next(iter(known or usable or candidates), None))
    return chosen


def _with_retry(store: Callable[[], _Outcome]) -> _Outcome:
    """Run ``store``, again if PostgreSQL broke a deadlock by aborting it (only when it is ours)."""
    for attempt in range(_RETRIES):
        try:
            return store()
        except OperationalError as exc:
            retryable = isinstance(exc.__cause__, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure)
            if not retryable or connection.in_atomic_block or attempt == _RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _store(checked: CheckedCalls, *, now: dt.datetime, bulk: bool) -> _Outcome:
    """Store the rows and add exactly the stored ones to the rollups, in one transaction."""
    rows, tenants = checked.rows, checked.tenants
    with transaction.atomic():
        increments.lock_tenants_shared(tenants.keys())
        if bulk and connection.vendor == "postgresql":
            outcome = _copy_rows(rows, stream=checked.stream or _staging_stream(rows), now=now)
        else:
            outcome = _insert_rows(rows, now=now)
        # Last, so the bucket rows other batches of the tenant also add to stay locked only briefly;
        # performance first in both paths (the import adds it in its insert statement).
        performance.apply(outcome.stats)
        pricing.apply(outcome.classes)
        increments.apply(outcome.buckets)
    return outcome


def _insert_rows(rows: Sequence[Row], *, now: dt.datetime) -> _Outcome:
    """A batch through ``INSERT .. ON CONFLICT DO NOTHING RETURNING``; the rest judged in Python."""
    first: dict[IdentityKey, Row] = {}
    for row in rows:
        first.setdefault(row.identity, row)
    # Sorted, so two batches sharing request ids lock them in the same order and cannot deadlock.
    candidates = [first[identity] for identity in sorted(first)]
    inserted = _insert_returning(candidates, now=now)
    stored = _stored_contents(first.keys() - inserted)
    outcome = _Outcome()
    for row in rows:
        identity = row.identity
        if identity in inserted and first[identity] is row:
            outcome.accepted += 1
            continue
        reference = first[identity].content if identity in inserted else stored.get(identity)
        if reference == row.content:
            outcome.duplicates += 1
        else:
            outcome.conflicts.append(row)
    # Zones read after the insert: on SQLite the write lock is held by then, on PostgreSQL the
    # tenant lock; a zone change committed meanwhile is either seen here or waits for this commit.
    zones = increments.tenant_zones({tenant_id for tenant_id, _request_id in inserted})
    new_values = [first[identity].values for identity in inserted]
    outcome.buckets = increments.hourly_from_values(new_values, zones)
    outcome.stats = performance.stats_from_values(new_values, zones)
    if connection.vendor != "postgresql":  # PostgreSQL added them in the insert (_insert_returning_postgresql)
        outcome.classes = pricing.classes_from_values(new_values, zones)
    return outcome


_COLUMNS = (
    "tenant_id",
    "api_key_id",
    "model_id",
    "occurred_at",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cache_creation_input_tokens",
    "cache_creation_1h_input_tokens",
    "duration_ms",
    "time_to_first_token_ms",
    "status",
    "error_type",
    "http_status",
    "service_tier",
    "request_id",
)
assert _COLUMNS.index("service_tier") == SERVICE_TIER_POSITION, "usage.pricing_rules reads the tier there"
_CONTENT_COLUMNS = _COLUMNS[1:-1]  # what "same content" compares, in Row.content's order
_PG_TYPES = (
    "int8",
    "int8",
    "int8",
    "timestamptz",
    "int8",
    "int8",
    "int8",
    "int8",
    "int8",
    "int8",
    "int4",
    "int4",
    "text",
    "text",
    "int2",
    "text",
    "text",
)


_LEDGER = CallRecord._meta.db_table
_CLAIMS = CallRequest._meta.db_table
_CLAIM = (
    f"INSERT INTO {_CLAIMS} (tenant_id, request_id, occurred_at) SELECT tenant_id, request_id, occurred_at"
    " FROM {source} ON CONFLICT (tenant_id, request_id) DO NOTHING RETURNING tenant_id, request_id"
)
_CLAIMED_ROWS = (
    "{source} JOIN claimed ON claimed.tenant_id = {source}.tenant_id AND claimed.request_id = {source}.request_id"
)


def _insert_returning(rows: Sequence[Row], *, now: dt.datetime) -> set[IdentityKey]:
    """Claim and insert ``rows`` (one per identity); return the (tenant id, request id) of those that were new."""
    if connection.vendor == "postgresql":
        return _insert_returning_postgresql(rows, now=now)
    adapt = connection.ops.adapt_datetimefield_value
    inserted: set[IdentityKey] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _SQLITE_ROWS_PER_STATEMENT):
            chunk = rows[start : start + _SQLITE_ROWS_PER_STATEMENT]
            claims = [(*row.identity, adapt(row.occurred_at)) for row in chunk]
            cursor.execute(
                f"INSERT INTO {_CLAIMS} (tenant_id, request_id, occurred_at) VALUES "
                + ", ".join(["(%s, %s, %s)"] * len(claims))
                + " ON CONFLICT (tenant_id, request_id) DO NOTHING RETURNING tenant_id, request_id",
                [value for claim in claims for value in claim],
            )
            claimed = set(cursor.fetchall())
            new = [row for row in chunk if row.identity in claimed]
            if new:
                placeholders = ", ".join(["(" + ", ".join(["%s"] * (len(_COLUMNS) + 1)) + ")"] * len(new))
                params: list[int | str | None] = []
                for row in new:
                    values = row.values
                    params.extend((*values[:3], adapt(values[3]), *values[4:], adapt(now)))
                columns = ", ".join((*_COLUMNS, "received_at"))
                cursor.execute(f"INSERT INTO {_LEDGER} ({columns}) VALUES {placeholders}", params)
            inserted.update(claimed)
    return inserted


def _insert_returning_postgresql(rows: Sequence[Row], *, now: dt.datetime) -> set[IdentityKey]:
    # One statement whatever the batch size: each column travels as one binary array; the claims
    # are inserted first, and only the rows whose claim was new reach the ledger.
    arrays = ", ".join(f"%b::{kind}[]" for kind in _PG_TYPES)
    columns = ", ".join(_COLUMNS)
    # The stored rows' pricing classes are added by the database in the same statement (one row
    # per class reaches no one), as the file import does.
    sql = (
        f"WITH batch AS (SELECT * FROM unnest({arrays}) AS batch ({columns})),"
        f" claimed AS ({_CLAIM.format(source='batch')}),"
        f" inserted AS (INSERT INTO {_LEDGER} ({columns}, received_at)"
        f" SELECT {', '.join(f'batch.{name}' for name in _COLUMNS)}, %b FROM {_CLAIMED_ROWS.format(source='batch')}"
        f" RETURNING {columns}),"
        f" classes AS ({pricing.upsert_from_inserted_sql()})"
        " SELECT tenant_id, request_id FROM inserted"
    )
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, [*(list(column) for column in zip(*(row.values for row in rows), strict=True)), now])
        return set(cursor.fetchall())


def _by_tenant(identities: Iterable[IdentityKey]) -> defaultdict[int, list[str]]:
    by_tenant: defaultdict[int, list[str]] = defaultdict(list)
    for tenant_id, request_id in identities:
        by_tenant[tenant_id].append(request_id)
    return by_tenant


# One index probe per request id, whatever the planner knows: a LIMIT in a LATERAL subquery cannot
# be flattened into a join, so each id is a lookup by the claims' primary key and, at the claimed
# instant, by the ledger's unique key (its partition pruned at run time). Without statistics (a new
# deployment, a new month's partition), ``tenant_id = %s AND request_id IN (..)`` read all the
# tenant's claims and calls of the month instead: 2.04M rows for 1,000 re-sent calls.
_PROBE_FROM = (
    "unnest(%s::int8[], %s::text[]) AS k (tenant_id, request_id)"
    f" CROSS JOIN LATERAL (SELECT occurred_at FROM {_CLAIMS} WHERE {_CLAIMS}.tenant_id = k.tenant_id"
    f" AND {_CLAIMS}.request_id = k.request_id LIMIT 1) AS c"
)
_PROBE_CLAIMS = f"SELECT k.tenant_id, k.request_id, c.occurred_at FROM {_PROBE_FROM}"
_PROBE_CONTENTS = (
    f"SELECT k.tenant_id, k.request_id, {', '.join(f'r.{name}' for name in _CONTENT_COLUMNS)} FROM {_PROBE_FROM}"
    f" CROSS JOIN LATERAL (SELECT {', '.join(_CONTENT_COLUMNS)} FROM {_LEDGER} WHERE {_LEDGER}.tenant_id = k.tenant_id"
    f" AND {_LEDGER}.request_id = k.request_id AND {_LEDGER}.occurred_at = c.occurred_at LIMIT 1) AS r"
)


def _probe(sql: str, identities: Collection[IdentityKey]) -> list[tuple[Any, ...]]:
    ordered = sorted(identities)
    with connection.cursor() as cursor:
        cursor.execute(sql, [[tenant_id for tenant_id, _ in ordered], [request_id for _, request_id in ordered]])
        return cursor.fetchall()


def _claims(identities: Collection[IdentityKey]) -> dict[IdentityKey, dt.datetime]:
    """{(tenant id, request id): instant of the stored call} of those already claimed, in one query."""
    if not identities:
        return {}
    if connection.vendor == "postgresql":
        return {
            (tenant_id, request_id): instant for tenant_id, request_id, instant in _probe(_PROBE_CLAIMS, identities)
        }
    condition = Q()
    for tenant_id, request_ids in _by_tenant(identities).items():
        condition |= Q(tenant_id=tenant_id, request_id__in=request_ids)
    claims = CallRequest.objects.filter(condition).values_list("tenant_id", "request_id", "occurred_at")
    return {(tenant_id, request_id): instant for tenant_id, request_id, instant in claims}


def _stored_contents(identities: Collection[IdentityKey]) -> dict[Identity, Content]:
    """The stored content of each claimed (tenant id, request id): the claim says at which instant,
    so the ledger read is pruned to the partitions of those instants."""
    if not identities:
        return {}
    if connection.vendor == "postgresql":
        rows = _probe(_PROBE_CONTENTS, identities)
        return {Identity(values[0], values[1]): Content(*values[2:]) for values in rows}
    claims = _claims(identities)
    if not claims:
        return {}
    condition = Q()
    for tenant_id, request_ids in _by_tenant(claims).items():
        instants = {claims[(tenant_id, request_id)] for request_id in request_ids}
        condition |= Q(tenant_id=tenant_id, request_id__in=request_ids, occurred_at__in=instants)
    stored = CallRecord.objects.filter(condition).values_list("tenant_id", "request_id", *_CONTENT_COLUMNS)
    contents: dict[Identity, Content] = {}
    for values in stored:
        identity, content = Identity(values[0], values[1]), Content(*values[2:])
        if claims[identity] == content.occurred_at:
            contents[identity] = content
    return contents


_STAGING = "usage_ingest_staging"


_STAGING_TYPES = ("int8", "bool", *_PG_TYPES)  # line, candidate, then the ledger's columns


def _staging_stream(rows: Iterable[Row]) -> bytes:
    """The rows as a binary COPY stream (header, rows, trailer) of the staging table's columns.

    Only the first row of each request id is a ``candidate`` for the ledger, so no sort is
    needed. Encoding needs a cursor for its adapters, but sends nothing.
    """
    stream = io.BytesIO()
    connection.ensure_connection()
    cursor = psycopg.Cursor(connection.connection)
    with cursor, psycopg.copy.Copy(cursor, binary=True, writer=psycopg.copy.FileWriter(stream)) as copy:
        copy.set_types(_STAGING_TYPES)
        seen: set[Identity] = set()
        for row in rows:
            identity = row.identity
            copy.write_row((row.position, identity not in seen, *row.values))
            seen.add(identity)
    return stream.getvalue()


def _copy_rows(rows: Sequence[Row], *, stream: bytes, now: dt.datetime) -> _Outcome:
    """A chunk through binary COPY into a staging table and one set-based insert (PostgreSQL)."""
    columns = ", ".join(_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {_STAGING} (line int8, candidate boolean, tenant_id int8, api_key_id int8,"
            " model_id int8, occurred_at timestamptz, input_tokens int8, output_tokens int8,"
            " cached_input_tokens int8, reasoning_tokens int8, cache_creation_input_tokens int8,"
            " cache_creation_1h_input_tokens int8, duration_ms int4, time_to_first_token_ms int4,"
            " status text, error_type text, http_status int2, service_tier text, request_id text) ON COMMIT DROP"
        )
        with cursor.copy(f"COPY {_STAGING} (line, candidate, {columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(stream)
        outcome = _insert_from_staging(cursor, now=now)
        if outcome.accepted < len(rows):
            by_line = {row.position: row for row in rows}
            outcome.conflicts = [by_line[line] for line in _staged_conflicts(cursor)]
        outcome.duplicates = len(rows) - outcome.accepted - len(outcome.conflicts)
        cursor.execute(f"DROP TABLE {_STAGING}")  # ON COMMIT DROP does not fire inside an outer transaction
    return outcome


def _insert_from_staging(cursor: CursorWrapper, *, now: dt.datetime) -> _Outcome:
    columns = ", ".join(_COLUMNS)
    staged = ", ".join(f"{_STAGING}.{name}" for name in _COLUMNS)
    candidates = f"(SELECT * FROM {_STAGING} WHERE candidate) AS {_STAGING}"
    # The stored calls' buckets are computed by the database: one row per bucket, not per call.
    cursor.execute(
        f"WITH claimed AS ({_CLAIM.format(source=candidates)}),"
        f" inserted AS (INSERT INTO {_LEDGER} ({columns}, received_at)"
        f" SELECT {staged}, %s FROM {_CLAIMED_ROWS.format(source=_STAGING)} WHERE {_STAGING}.candidate"
        f" RETURNING {columns}),"
        f" classes AS ({pricing.upsert_from_inserted_sql()}),"
        f" performance AS ({performance.upsert_from_inserted_sql()})"
        f" {increments.hourly_from_inserted_sql()}",
        [now],
    )
    outcome = _Outcome()
    outcome.buckets = increments.buckets_from_rows(cursor.fetchall())
    outcome.accepted = sum(sums[0] for sums in outcome.buckets.values())
    return outcome


def _staged_conflicts(cursor: CursorWrapper) -> list[int]:
    """Lines whose content differs from the stored call of their request id (found at its claim's instant)."""
    staged = ", ".join(f"s.{name}" for name in _CONTENT_COLUMNS)
    stored = ", ".join(f"c.{name}" for name in _CONTENT_COLUMNS)
    # Index probes per line whatever the statistics, as ``_PROBE_FROM`` (a staging table is never analyzed).
    cursor.execute(
        f"SELECT s.line FROM {_STAGING} s"
        f" CROSS JOIN LATERAL (SELECT occurred_at FROM {_CLAIMS} WHERE {_CLAIMS}.tenant_id = s.tenant_id"
        f" AND {_CLAIMS}.request_id = s.request_id LIMIT 1) AS r"
        f" LEFT JOIN LATERAL (SELECT {', '.join(_CONTENT_COLUMNS)} FROM {_LEDGER}"
        f" WHERE {_LEDGER}.tenant_id = s.tenant_id AND {_LEDGER}.request_id = s.request_id"
        f" AND {_LEDGER}.occurred_at = r.occurred_at LIMIT 1) AS c ON true"
        f" WHERE ({staged}) IS DISTINCT FROM ({stored}) ORDER BY s.line"
    )
    return [line for (line,) in cursor.fetchall()]


def _touch_keys(rows: Iterable[Row], *, conflicts: Iterable[Row], now: dt.datetime) -> None:
    """Move each key's ``last_used_at`` to its newest call (not counting rejected conflicts)."""
    rejected = {row.position for row in conflicts}
    latest: dict[int, dt.datetime]
    keys: dict[int, ApiKey]
    latest, keys = {}, {}
    for row in rows:
        key_id, instant = row.content.api_key_id, row.content.occurred_at
        if instant > latest.get(key_id, _EPOCH) and row.position not in rejected:
            latest[key_id], keys[key_id] = instant, row.key
    for key_id, instant in latest.items():
        credential_touch(keys[key_id], at=min(instant, now))
