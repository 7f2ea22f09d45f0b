"""The identity of an alerting series."""

from __future__ import annotations

import hashlib


def fingerprint(rule_id: str, site: str, device: str, metric: str) -> str:
    """Stable id of an alerting series: the same inputs give the same fingerprint everywhere."""
    key = f"{rule_id}\x1f{site}\x1f{device}\x1f{metric}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]
