"""Outbound HTTP a tenant can aim (budget webhooks): never into the platform's own network.

A tenant chooses the URL, so it could point the worker at loopback, the private network, the
cloud's metadata service or an internal port. The rules:

- An address is allowed only if it is globally reachable, unless it falls in one of the
  operator's ``WEBHOOK_ALLOWED_NETWORKS`` (e.g. ``10.20.0.0/16`` for a self-hosted receiver).
  IPv6 forms that embed an IPv4 address (IPv4-mapped, 6to4, NAT64) are judged by that address.
- The name is resolved once; every address it resolves to must be allowed, and the connection
  goes to one of those checked addresses (no second lookup a DNS answer could change), while the
  Host header and TLS (SNI and certificate check) keep the URL's hostname.
- Redirects are not followed; a 3xx is a failed attempt.
- Each attempt has one total deadline, resolution and every read included: a receiver that
  answers a byte at a time is cut at the deadline, not after each quiet read.
- The tenant sees a category of failure (``Failure.category``), never the socket's message, so
  the page cannot be used to map which internal ports are open.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# RFC 3986's reserved and unreserved characters, and "%" so that existing escapes stay as sent.
_URI_SAFE = "/%:@!$&'()*+,;=-._~"


class Failure(Exception):  # noqa: N818 (an outcome shown to tenants, not only an error)
    """A failed attempt; ``category`` is what the tenant may see, ``detail`` only the operator's log."""

    def __init__(self, category: str, detail: str = "") -> None:
        super().__init__(category)
        self.category, self.detail = category, detail or category


REFUSED = "refused: private address"
CATEGORIES = frozenset(
    {REFUSED, "invalid URL", "DNS lookup failed", "timed out", "TLS error", "connection failed", "invalid response"}
)


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(net, strict=False) for net in settings.WEBHOOK_ALLOWED_NETWORKS]


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_allowed(address: IPAddress) -> bool:
    """Globally reachable unicast, or inside a network the operator allows."""
    if any(address in net for net in allowed_networks()):
        return True
    if isinstance(address, ipaddress.IPv6Address):
        if address.teredo is not None:
            return False  # tunnels to an address the check cannot see
        if address.is_site_local:
            return False  # fec0::/10: deprecated, still routed inside networks that use it; is_global says True
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return address_allowed(embedded)
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


def _getaddrinfo(host: str, port: int, timeout: float) -> list[IPAddress]:
    """The addresses of ``host``; the system resolver has no timeout, so it runs in a thread we stop waiting for."""
    result: list[IPAddress] = []
    error: list[BaseException] = []

    def resolve() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            result.extend(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
        except (OSError, ValueError) as exc:
            error.append(exc)

    thread = threading.Thread(target=resolve, daemon=True)
    thread.start()
    thread.join(max(timeout, 0))
    if thread.is_alive():
        raise Failure("timed out", f"resolving {host}")
    if error or not result:
        raise Failure("DNS lookup failed", f"{host}: {error[0] if error else 'no address'}")
    return list(dict.fromkeys(result))


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str


def parse(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Failure("invalid URL")
    if parts.username or parts.password:
        raise Failure("invalid URL", "credentials in the URL")
    try:
        port = parts.port
    except ValueError as exc:
        raise Failure("invalid URL", str(exc)) from exc
    if port == 0:  # not "no port": a port no receiver listens on
        raise Failure("invalid URL", "port 0")
    port = port or (443 if parts.scheme == "https" else 80)
    # An IRI path (the form accepts /hooks/bücher) goes out as its URI: http.client sends ASCII only.
    path = quote(parts.path or "/", safe=_URI_SAFE) + (
        f"?{quote(parts.query, safe=_URI_SAFE + '?')}" if parts.query else ""
    )
    return Target(parts.scheme, parts.hostname, port, path)


def resolve_checked(target: Target, timeout: float) -> list[IPAddress]:
    """Every address of the target's host, all of them allowed (else Failure(REFUSED))."""
    try:
        addresses = [ipaddress.ip_address(target.host.split("%")[0])]
    except ValueError:
        addresses = _getaddrinfo(target.host, target.port, timeout)
    refused = [str(a) for a in addresses if not address_allowed(a)]
    if refused:
        raise Failure(REFUSED, f"{target.host} resolves to {', '.join(refused)}")
    return addresses


def check_url(url: str, timeout: float = 5.0) -> None:
    """What the form checks on save: a usable URL whose host is (now) an allowed address."""
    resolve_checked(parse(url), timeout)


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("attempt deadline")
        return left


class _DeadlineSocket:
    """A connected socket whose every blocking call gets only the time left before the deadline."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self._sock, self._deadline = sock, deadline

    def _arm(self) -> None:
        self._sock.settimeout(self._deadline.left())

    def sendall(self, data: bytes) -> None:
        self._arm()
        self._sock.sendall(data)

    def recv_into(self, buffer: memoryview, nbytes: int = 0) -> int:
        self._arm()
        return self._sock.recv_into(buffer, nbytes)

    def makefile(self, mode: str = "rb", *args: object, **kwargs: object) -> io.BufferedReader:
        return io.BufferedReader(socket.SocketIO(self, "rb"))  # type: ignore[arg-type]

    def _decref_socketios(self) -> None:
        pass  # the socket is closed by close(), once, whatever its file objects do

    def close(self) -> None:
        self._sock.close()


class _PinnedConnection(http.client.HTTPConnection):
    """HTTP(S) to one checked address; Host, SNI and the certificate check use the URL's hostname."""

    def __init__(self, target: Target, addresses: Iterable[IPAddress], deadline: _Deadline) -> None:
        super().__init__(target.host, target.port)
        self.target, self.addresses, self.deadline = target, list(addresses), deadline
        self.default_port = 443 if target.scheme == "https" else 80  # Host names the port only if not the default

    def connect(self) -> None:
        last: BaseException | None = None
        for address in self.addresses:
            try:
                sock = socket.create_connection((str(address), self.target.port), timeout=self.deadline.left())
                break
            except TimeoutError:
                raise
            except OSError as exc:
                last = exc
        else:
            raise ConnectionError(str(last))
        if self.target.scheme == "https":
            context = ssl.create_default_context()
            sock.settimeout(self.deadline.left())  # the handshake as a whole gets what is left
            sock = context.wrap_socket(sock, server_hostname=self.target.host)
        self.sock = _DeadlineSocket(sock, self.deadline)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST ``body`` to ``url`` under the rules above; the 2xx status, or Failure."""
    deadline = _Deadline(timeout)
    target = parse(url)
    try:
        addresses = resolve_checked(target, deadline.left())
        connection = _PinnedConnection(target, addresses, deadline)
        try:
            connection.request("POST", target.path, body=body, headers=headers)
            status = connection.getresponse().status
        finally:
            connection.close()
    except Failure:
        raise
    except TimeoutError as exc:
        raise Failure("timed out", repr(exc)) from exc
    except ssl.SSLError as exc:
        raise Failure("TLS error", repr(exc)) from exc
    except (http.client.HTTPException, ValueError) as exc:
        raise Failure("invalid response", repr(exc)) from exc
    except OSError as exc:
        raise Failure("connection failed", repr(exc)) from exc
    if not 200 <= status < 300:
        raise Failure(f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else ""))
    return status
