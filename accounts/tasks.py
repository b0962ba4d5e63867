from celery import shared_task
from django.core.mail import send_mail


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_email(*, subject: str, body: str, from_email: str | None, to: list[str]) -> None:
    """Send one plain-text e-mail through Django's mail backend."""
    send_mail(subject, body, from_email, to)
