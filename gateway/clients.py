"""Who a request comes from, as the portal's rate limits count it: the client's address seen
through the balancers the deployment trusts (CASN_GATEWAY_TRUSTED_PROXIES), and an IPv6 client
by its /64, the block one subscriber gets (its failed logins by its /48: gateway/portal.py).

Done here rather than by uvicorn's `forwarded_allow_ips`: uvicorn takes a mistyped entry as a
host name that never matches (nobody trusted, every applicant counted as the balancer), and
trusts the left-most X-Forwarded-For entry, which the client writes, when every entry is trusted.
Here a bad entry stops the settings, the same code runs under every server and in the tests, and
X-Forwarded-Proto changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address


def _address(text: str) -> Address | None:
    """An address as a peer or an X-Forwarded-For entry gives it (`a.b.c.d`, `a.b.c.d:port`,
    an IPv6 address bare or `[...]:port`), or None when it is none."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        found = ip_address(text)
    except ValueError:
        return None
    if isinstance(found, IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def _trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: tuple[Network, ...]
) -> str:
    """The client's address: the TCP peer, unless the peer is a trusted balancer; then the
    right-most X-Forwarded-For entry outside the trusted networks (each balancer appends the
    address it was reached from, so what lies left of that is the client's own writing).

    An entry that is not an address where the walk reaches it, or a chain of trusted entries
    only, gives the nearest trusted hop: never a value the client chose."""
    found = _address(peer or "")
    if found is None:
        return "unknown"
    if not _trusted(found, trusted):
        return str(found)
    entries = [e for header in forwarded_for for e in header.split(",") if e.strip()]
    for entry in reversed(entries):
        hop = _address(entry)
        if hop is None:
            break
        found = hop
        if not _trusted(hop, trusted):
            break
    return str(found)


# An IPv6 client holds a /64 at least (a phone, a home), and often a /56 or a /48 (a home router
# given a prefix to delegate, a site): 2^64 addresses in one, 65,536 /64s in a /48.
SUBSCRIBER_PREFIX = 64
SITE_PREFIX = 48


def rate_key(address: str, ipv6_prefix: int = SUBSCRIBER_PREFIX) -> str:
    """What a rate limit counts an address by: an IPv4 address itself, an IPv6 address by its
    network of `ipv6_prefix` bits (a /64 by default: a subscriber has 2^64 addresses in it to
    rotate through)."""
    found = _address(address)
    if isinstance(found, IPv6Address):
        return str(IPv6Network((found, ipv6_prefix), strict=False))
    return str(found) if found is not None else address


# The deployment's own networks: loopback and the private ranges (RFC 1918, IPv6 unique local),
# where the scraper (Prometheus) and the balancer sit; the public comes from anywhere else.
INTERNAL: tuple[Network, ...] = tuple(
    ip_network(n)
    for n in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7")
)
# Headers a balancer adds to what it relays (X-Forwarded-For is required of it: see above).
RELAYED = ("x-forwarded-for", "forwarded", "x-real-ip")


def from_inside(peer: str | None, header_names: Iterable[str]) -> bool:
    """Whether a request comes from the deployment's own network itself: a peer on loopback or a
    private range that relays nothing (a balancer's request for a visitor carries X-Forwarded-For).
    What only the operators' tools may read (/metrics) is answered to such a request only."""
    found = _address(peer or "")
    if found is None or not _trusted(found, INTERNAL):
        return False
    return not any(name.lower() in RELAYED for name in header_names)
