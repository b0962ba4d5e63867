"""What ingestion announces: the writer never imports the features that react to a write.

``calls_stored`` is sent by ``usage.ingestion.services`` once a batch or a file chunk stored new
calls, with ``tenant_ids`` (the tenants of the checked calls); it is sent inside the caller's
transaction, so a receiver defers its work with ``transaction.on_commit``. Budgets subscribe
(``usage.budgets.receivers``), as ``usage.tasks`` subscribes to the recompute's
``days_marked_dirty``.
"""

from django.dispatch import Signal

calls_stored = Signal()
