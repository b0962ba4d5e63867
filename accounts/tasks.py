from celery import shared_task
from django.contrib.auth.forms import PasswordResetForm


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_password_reset(*, email: str, domain: str, use_https: bool) -> None:
    """Django's reset e-mail to each active user with a usable password at ``email`` (none if unknown)."""
    form = PasswordResetForm({"email": email})
    if form.is_valid():
        form.save(domain_override=domain, use_https=use_https)
