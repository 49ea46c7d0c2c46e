"""What the collector keeps of a client's address: its network, never the address (docs/rfcs/session-tracking.md §7).

No Django imports: gunicorn's access logger (config/gunicorn.py) uses it too, in the master as in workers.
"""

from __future__ import annotations

import hashlib
import ipaddress

PATH = "/collect/v1/batch"


def ip_prefix(ip: str) -> str | None:
    """The network the address is in: IPv4 /24, IPv6 /48 (what is stored and logged)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    bits = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


def ip_digest(ip: str, key: bytes) -> str:
    """A keyed digest of the address: what names its rate-limit counter (Redis keys hold no address)."""
    return hashlib.blake2b(ip.encode(), digest_size=12, key=key[:64]).hexdigest()
