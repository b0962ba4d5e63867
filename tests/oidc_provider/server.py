"""Start the test OpenID Connect provider in a process of its own, on a free 127.0.0.1 port."""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "usage-statistics"
CLIENT_SECRET = "client-secret-for-tests-only"


@dataclass
class Provider:
    url: str

    def settings(self) -> dict[str, object]:
        """The product's settings that point single sign-on at this provider."""
        return {
            "OIDC_ENABLED": True,
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{self.url}/o/authorize/",
            "OIDC_OP_TOKEN_ENDPOINT": f"{self.url}/o/token/",
            "OIDC_OP_USER_ENDPOINT": f"{self.url}/o/userinfo/",
            "OIDC_OP_JWKS_ENDPOINT": f"{self.url}/o/.well-known/jwks.json",
        }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rsa_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _wait_for(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"the OIDC provider exited: {process.stderr.read().decode()[-3000:]}") from None
            time.sleep(0.2)
    raise RuntimeError("the OIDC provider did not start within 30 s")


@contextmanager
def running_provider(
    folder: Path, *, redirect_uris: list[str], users: list[dict[str, str]], unverified: str = ""
) -> Iterator[Provider]:
    """A provider with these users and the product registered as a client; stopped on exit."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.oidc_provider.settings",
        "OIDC_TEST_DB": str(folder / "provider.sqlite3"),
        "OIDC_TEST_RSA_KEY": _rsa_key_pem(),
        "OIDC_TEST_UNVERIFIED": unverified,
        "OIDC_TEST_SETUP": json.dumps(
            {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": redirect_uris, "users": users}
        ),
    }
    env["PYTHONPATH"] = str(ROOT)
    subprocess.run([sys.executable, "-m", "tests.oidc_provider.setup"], cwd=folder, env=env, check=True)
    port = _free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    command = [str(gunicorn), "tests.oidc_provider.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    process = subprocess.Popen(
        # Not the repository's folder: gunicorn would load the product's gunicorn.conf.py.
        command,
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _wait_for(process, port)
        yield Provider(url=f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
