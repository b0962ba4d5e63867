from .models import ApiKey
from .secrets import secret_matches, split_secret


def api_key_by_secret(secret: str) -> ApiKey | None:
    """The key (with its tenant) that ``secret`` belongs to, whatever its status, or None.

    One lookup by the unique public id and one constant-time HMAC comparison: the gateway
    calls this for every request it authenticates.
    """
    public_id = split_secret(secret, ApiKey.PREFIX)
    if public_id is None:
        return None
    try:
        key = ApiKey.objects.select_related("tenant").get(public_id=public_id)
    except ApiKey.DoesNotExist:
        return None
    return key if secret_matches(secret, key.secret_hash) else None
