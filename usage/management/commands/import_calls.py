import datetime as dt
import json
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, connections
from django.utils import timezone
from tqdm import tqdm

from accounts.management.operator import tenant_by_slug
from accounts.models import ApiKey
from usage.ingestion import files as call_files
from usage.ingestion import services


class Command(BaseCommand):
    help = (
        "Import calls from a file: JSONL or CSV with the ingestion API's fields, or an Azure LLM inference "
        "trace (--format azure with --tenant, --api-key and --model). The same rules as the API apply "
        "(known key active at occurred_at, integer counts, request ids deduplicated per tenant) except the "
        "API's time window: an import is how history older than that window gets in. Streams the file, "
        "writes each rejected line with its reasons to a rejects file, and can be re-run: calls already "
        "stored count as duplicates."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=["auto", "jsonl", "csv", "azure"], default="auto")
        parser.add_argument(
            "--tenant", metavar="SLUG", help="Required for azure; for jsonl/csv, reject keys of other tenants."
        )
        parser.add_argument(
            "--api-key",
            action="append",
            default=[],
            dest="api_keys",
            metavar="PUBLIC_ID",
            help="azure: a key of the tenant; repeat to spread calls over keys (line number modulo key count).",
        )
        parser.add_argument("--model", metavar="NAME", help="azure: the catalog name the calls are reported under.")
        parser.add_argument(
            "--shift-to",
            metavar="DATE",
            help="azure: move the trace by whole days so its first call falls on DATE (YYYY-MM-DD or 'today').",
        )
        parser.add_argument(
            "--rejects", type=Path, help="Where rejected lines go (default: ./<file name>.rejects.jsonl)."
        )
        parser.add_argument("--batch-size", type=int, default=10_000, help="Calls per transaction (default 10000).")
        parser.add_argument(
            "--no-progress", action="store_true", help="No progress bar (there is none when stderr is no terminal)."
        )
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the totals as one JSON object.")

    def handle(self, *args, file, **options):
        if not file.is_file():
            raise CommandError(f"No such file: {file}")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        source = call_files.LineSource(file)
        try:
            entries, tenant = self._reader(source, options)
            rejects_path = options["rejects"] or Path.cwd() / f"{file.name}.rejects.jsonl"
            started = time.monotonic()
            with call_files.fewer_collections():
                totals = self._import(entries, source, tenant, rejects_path, options)
        except call_files.FileFormatError as exc:
            raise CommandError(str(exc)) from exc
        self._report(totals, rejects_path, time.monotonic() - started, options)

    def _reader(self, source, options):
        fmt = options["format"]
        if fmt == "auto":
            fmt = call_files.sniff_format(source.path)
        tenant = tenant_by_slug(options["tenant"]) if options["tenant"] else None
        if fmt != "azure":
            if options["api_keys"] or options["model"] or options["shift_to"]:
                raise CommandError("--api-key, --model and --shift-to apply to --format azure only.")
            reader = call_files.read_jsonl if fmt == "jsonl" else call_files.read_csv
            return reader(source), tenant
        if tenant is None or not options["api_keys"] or not options["model"]:
            raise CommandError("--format azure needs --tenant, at least one --api-key and --model.")
        self._check_keys(tenant, options["api_keys"])
        shift = call_files.shift_to(source.path, self._day(options["shift_to"])) if options["shift_to"] else None
        entries = call_files.read_azure(
            source, api_keys=options["api_keys"], model=options["model"], shift=shift or dt.timedelta()
        )
        return entries, tenant

    def _check_keys(self, tenant, public_ids):
        found = set(ApiKey.objects.filter(tenant=tenant, public_id__in=public_ids).values_list("public_id", flat=True))
        unknown = [public_id for public_id in public_ids if public_id not in found]
        if unknown:
            raise CommandError(f"Not API keys of tenant {tenant.slug}: {', '.join(unknown)}.")

    def _day(self, value):
        if value == "today":
            return timezone.now().date()
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise CommandError(f"--shift-to takes YYYY-MM-DD or 'today', not {value!r}.") from exc

    def _import(self, entries, source, tenant, rejects_path, options):
        totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
        size = source.path.stat().st_size
        # disable=None: no bar when stderr is not a terminal (a log file, CI).
        disable = True if options["no_progress"] else None
        bar = tqdm(total=size, unit="B", unit_scale=True, desc=source.path.name, file=sys.stderr, disable=disable)
        with bar, rejects_path.open("w", encoding="utf-8") as rejects:
            for chunk, checked in self._checked_chunks(entries, tenant, options["batch_size"]):
                self._import_chunk(chunk, checked, totals, rejects)
                bar.update(source.bytes_read - bar.n)
        return totals

    def _checked_chunks(self, entries, tenant, size):
        """``(chunk, CheckedCalls)`` pairs, prepared a chunk ahead in a reader thread.

        Reading, validating and checking a chunk is Python; storing one is mostly waiting for
        the database, so the two overlap. The thread checks on a connection of its own, which
        cannot see an enclosing transaction's writes: inside one (a test), it only reads ahead.
        """
        chunks = call_files.validated_chunks(entries, size)
        if connection.in_atomic_block:
            return _checked(call_files.prefetched(chunks), tenant)
        return call_files.prefetched(_checked(chunks, tenant), finish=connections.close_all)

    def _import_chunk(self, chunk, checked, totals, rejects):
        result = services.call_records_store(checked)
        totals["accepted"] += result.accepted
        totals["duplicates"] += result.duplicates
        totals["rejected"] += result.rejected + sum(1 for entry in chunk if entry.call is None)
        reasons = {}  # line -> (request id, what is wrong with it)
        for entry in chunk:
            if entry.call is None:
                reasons[entry.line] = (entry.request_id, list(entry.errors))
        for error in result.errors:
            reason = {"field": error["field"], "code": error["code"], "detail": error["detail"]}
            reasons.setdefault(error["index"], (error["request_id"], []))[1].append(reason)
        if reasons:
            texts = {entry.line: entry.text for entry in chunk}
            for line in sorted(reasons):
                request_id, errors = reasons[line]
                record = {"line": line, "request_id": request_id, "errors": errors, "text": texts[line]}
                rejects.write(json.dumps(record) + "\n")

    def _report(self, totals, rejects_path, seconds, options):
        if options["as_json"]:
            self.stdout.write(json.dumps({**totals, "rejects_file": str(rejects_path), "seconds": round(seconds, 3)}))
            return
        calls = sum(totals.values())
        rate = calls / seconds if seconds > 0 else 0
        self.stdout.write(
            f"accepted {totals['accepted']}, duplicates {totals['duplicates']}, rejected {totals['rejected']} "
            f"({calls} calls in {seconds:.1f} s, {rate:,.0f} calls/s)"
        )
        if totals["rejected"]:
            self.stdout.write(f"Rejected lines and their reasons: {rejects_path}")


def _checked(chunks, tenant):
    for chunk in chunks:
        calls = [(entry.line, entry.call) for entry in chunk if entry.call is not None]
        yield chunk, services.call_records_check(calls=calls, tenant=tenant)
