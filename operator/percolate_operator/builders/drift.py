"""Drift: does the object in the cluster still hold what the operator wants?"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$")
_SUFFIX = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}  # fmt: skip


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes resource quantity as a number (`"0.5"` -> 0.5, `"1Gi"` -> 1073741824)."""
    match = _QUANTITY.fullmatch(str(value).strip())
    if match is None:
        return None
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number + suffix)
        return Decimal(number) * _SUFFIX[suffix]
    except InvalidOperation:
        return None


def quantities_equal(desired: Any, actual: Any) -> bool:
    """Equal as amounts: the API server normalises `"0.5"` to `500m` and `"1024Mi"` to `1Gi`."""
    if desired == actual:
        return True
    want, have = parse_quantity(desired), parse_quantity(actual)
    return want is not None and want == have


def is_subset(desired: Any, actual: Any, *, _quantities: bool = False) -> bool:
    """Whether every field of `desired` is present with the same value in `actual` (drift check).

    Lists must match element-wise (each element a subset), so a removed or edited container,
    env var or toleration counts as drift, while server-added defaults do not. Values under a
    container's `resources.requests`/`limits` are compared as quantities, since the API server
    rewrites them in canonical form and a textual compare would re-apply forever.
    """
    if isinstance(desired, Mapping):
        if not isinstance(actual, Mapping):
            return False
        for key, value in desired.items():
            if key not in actual:
                return False
            quantities = _quantities or (key in ("requests", "limits") and isinstance(value, Mapping))
            if not is_subset(value, actual[key], _quantities=quantities):
                return False
        return True
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(desired) != len(actual):
            return False
        return all(is_subset(d, a) for d, a in zip(desired, actual, strict=True))
    if _quantities:
        return quantities_equal(desired, actual)
    return bool(desired == actual)
