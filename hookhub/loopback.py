"""Whether an address is this host's own loopback: the one place plain http and published sandbox
keys may go, since nothing on the network can read or answer what is sent there."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str | None) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1`` (brackets allowed); False for any other name,
    since what a name resolves to is up to the network."""
    if not host:
        return False
    host = host.strip().removeprefix("[").removesuffix("]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
