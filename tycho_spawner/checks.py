"""Checks of single values in a catalog: Kubernetes quantities, names, paths, numbers, labels.

Each takes the value and the dotted path it was found at, and returns the value (normalised)
or raises :class:`SpecError` naming that path. They are the leaves of the catalog's one
structural definition (:mod:`tycho_spawner.schema`) and of the checks of Kubernetes-shaped
values in :mod:`tycho_spawner.model`, so a quantity or a name means the same everywhere.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from .errors import SpecError

# Kubernetes quantity: a decimal number with an optional binary (Ki..Ei) or decimal (n..E)
# suffix or an exponent. Signs are not accepted: no limit or request is negative.
_QUANTITY_RE = re.compile(
    r"^(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}

# RFC 1123 label (container, port, volume names) and C identifier (env var names).
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# A key of a Secret or ConfigMap.
_ENV_KEY_RE = re.compile(r"^[-._A-Za-z0-9]+$")


# An extended resource: a domain (not kubernetes.io's) and a name, as Kubernetes accepts them.
_EXTENDED_RESOURCE_RE = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
# A DNS subdomain (Kubernetes object names: Secrets, ConfigMaps, claims, priority classes).
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")



def object_name(value: Any, path: str, what: str = "name") -> str:
    """A Kubernetes object's name (a DNS subdomain): a Secret, ConfigMap, claim, priority class."""
    if not isinstance(value, str) or len(value) > 253 or not _DNS_SUBDOMAIN_RE.match(value):
        raise SpecError(path, f"{value!r} is not a {what} (lowercase letters, digits, '-' and '.')")
    return value



def parse_quantity(value: Any, path: str) -> Decimal:
    """Return the numeric value of a Kubernetes quantity, or raise naming ``path``.

    Numbers from YAML (``memory: 2``) are accepted as their string form, as kubectl does.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise SpecError(path, f"{value!r} is not a Kubernetes quantity")
    text = str(value)
    match = _QUANTITY_RE.match(text)
    if not match:
        raise SpecError(path, f"{text!r} is not a Kubernetes quantity")
    try:
        number = Decimal(match["num"])
    except InvalidOperation:  # pragma: no cover - the regex admits only decimals
        raise SpecError(path, f"{text!r} is not a Kubernetes quantity") from None
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * (Decimal(10) ** int(suffix[1:]))



def string(value: Any, path: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value):
        raise SpecError(path, f"expected a non-empty string, got {value!r}")
    return value



def string_list(value: Any, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise SpecError(path, f"expected a list of strings, got {type(value).__name__}")
    return tuple(string(v, f"{path}[{i}]", allow_empty=True) for i, v in enumerate(value))



def integer(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(path, f"expected an integer from {low} to {high}, got {value!r}")
    return value



def absolute_path(value: Any, path: str) -> str:
    text = string(value, path)
    if not text.startswith("/"):
        raise SpecError(path, f"{text!r} must be an absolute path")
    if text != "/" and text.endswith("/"):
        text = text.rstrip("/")
    if text == "/" or any(part in (".", "..") for part in text.split("/")):
        raise SpecError(path, f"{text!r} is not a usable mount point")
    return text



def port(value: Any, path: str) -> int:
    return integer(value, path, 1, 65535)



def dns_label(value: Any, path: str) -> str:
    if not isinstance(value, str) or len(value) > 63 or not _DNS_LABEL_RE.match(value):
        raise SpecError(path, f"{value!r} is not a valid name (lowercase letters, digits and '-', at most 63)")
    return value



def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(path, f"must be true or false, got {value!r}")
    return value



def a_list(value: Any, path: str) -> list:
    if not isinstance(value, (list, tuple)):
        raise SpecError(path, f"expected a list, got {type(value).__name__}")
    return list(value)



def label_key(key: Any, path: str) -> str:
    prefix, _, name = key.rpartition("/") if isinstance(key, str) else ("", "", "")
    if (not name or len(name) > 63 or not _LABEL_NAME_RE.match(name)
            or (prefix and (len(prefix) > 253 or not _LABEL_PREFIX_RE.match(prefix)))):
        raise SpecError(path, f"{key!r} is not a label name")
    return key



def label_value(value: Any, path: str) -> str:
    if not isinstance(value, str) or len(value) > 63 or not (value == "" or _LABEL_NAME_RE.match(value)):
        raise SpecError(path, f"{value!r} is not a label value (a string of letters, digits, '-', '_', '.', at most 63)")
    return value



def mapping(value: Any, path: str) -> None:
    if not isinstance(value, Mapping):
        raise SpecError(path, f"expected a mapping (keyed by name), got {type(value).__name__}")

_HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")


# Kubernetes' label syntax: an optional DNS-subdomain prefix, a name of at most 63 characters.
_LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_LABEL_PREFIX_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
