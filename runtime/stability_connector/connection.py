"""Where requests go and with which key: the connection, and the key as a secret.

The key lives in a ``Secret`` from the moment it is read from the environment; only the
transport calls ``reveal()``, at send time, to build the authorization header.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

import httpx

from .definitions import ConnectorSpec
from .errors import ConnectorError

BASE_URL_ENV = "STABILITY_BASE_URL"
SANDBOX_KEY = "sandbox"
SANDBOX_NAME = "sandbox"
DEFAULT_NAME = "default"


class ConnectionSetupError(ConnectorError):
    """A connection cannot be set up (unknown name, missing key, bad base URL)."""


class Secret:
    """An API key. Its repr and str never show it; ``reveal()`` is for the transport."""

    __slots__ = ("__value",)

    def __init__(self, value: str) -> None:
        self.__value = value

    def reveal(self) -> str:
        return self.__value

    def fingerprint(self) -> str:
        """sha256 of the key: identifies it (shared rate limits) without disclosing it."""
        return hashlib.sha256(self.__value.encode("utf-8")).hexdigest()

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.__value.encode(), other.__value.encode())

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __reduce__(self) -> NoReturn:
        # Pickling would write the key into whatever the pickle goes to (a file, a queue).
        raise TypeError("a Secret cannot be pickled; pass the connection name instead")

    # Immutable, so copies are the same object (and copying needs no pickling).
    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self


@dataclass(frozen=True)
class Connection:
    """Where to send requests. ``sandbox=True``: no key is configured, so requests go to
    the built-in sandbox in the same process."""

    name: str
    base_url: str
    api_key: Secret
    sandbox: bool = False
    # The header that carries "Bearer <key>" (connector.yaml connection.header).
    auth_header: str = "authorization"

    def __post_init__(self) -> None:
        check_base_url(self.base_url, where=f"connection {self.name!r}")


def sandbox_connection(auth_header: str = "authorization") -> Connection:
    """The built-in sandbox: what runs when no API key is configured."""
    from .sandbox import SANDBOX_BASE_URL  # imported late: the sandbox pulls in its server

    return Connection(
        name=SANDBOX_NAME,
        base_url=SANDBOX_BASE_URL,
        api_key=Secret(SANDBOX_KEY),
        sandbox=True,
        auth_header=auth_header,
    )


def resolve_connection(
    connector: ConnectorSpec, name: str | None = None, env: Mapping[str, str] = os.environ
) -> Connection:
    """The connection to use.

    - No name (or ``"default"``): the key from ``connection.api_key.env``
      (``STABILITY_API_KEY``) and the connector's base URL, which ``STABILITY_BASE_URL``
      overrides (a proxy, or a sandbox served on loopback). With no key at all: the
      built-in sandbox - unless ``STABILITY_BASE_URL`` is set, then that address with
      the sandbox's placeholder key.
    - ``"sandbox"``: the built-in sandbox.
    - A name from ``connection.named``: that connection's key variable and base URL
      (its ``base_url_env`` variable when set, else its ``base_url``, else the
      connector's). Its key is required: asking for ``production`` never falls back
      to the sandbox.
    """
    spec = connector.connection
    header = spec.header
    if name in (None, "", DEFAULT_NAME):
        key = env.get(spec.api_key.env, "").strip()
        override = env.get(BASE_URL_ENV, "").strip()
        if not key and not override:
            return sandbox_connection(header)
        if override:
            check_base_url(override, where=f"the environment variable {BASE_URL_ENV}")
        return Connection(
            name=DEFAULT_NAME,
            base_url=override or connector.base_url,
            api_key=Secret(key or SANDBOX_KEY),
            auth_header=header,
        )
    if name == SANDBOX_NAME:
        return sandbox_connection(header)
    named = spec.named.get(name)
    if named is None:
        known = ", ".join([DEFAULT_NAME, SANDBOX_NAME, *spec.named]) or "none"
        raise ConnectionSetupError(f"unknown connection {name!r}; known connections: {known}")
    key = env.get(named.api_key_env, "").strip()
    if not key:
        raise ConnectionSetupError(
            f"connection {name!r} needs an API key: set the environment variable "
            f"{named.api_key_env}"
        )
    override = env.get(named.base_url_env, "").strip() if named.base_url_env else ""
    if override:
        check_base_url(override, where=f"the environment variable {named.base_url_env}")
    return Connection(
        name=name,
        base_url=override or named.base_url or connector.base_url,
        api_key=Secret(key),
        auth_header=header,
    )


def check_base_url(url: str, *, where: str) -> None:
    """A base URL must be http(s), name a host, and hold no user name or password
    (credentials in a URL end up in logs and error messages)."""

    def refuse(problem: str) -> NoReturn:
        raise ConnectionSetupError(f"{where}: the base URL {problem}")

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        # Not echoed: a malformed URL may still hold a password.
        refuse("is not a valid URL; use for example https://api.stability.ai")
    if parsed.userinfo:
        refuse("must not contain a user name or password; put the key in the API key variable")
    if parsed.scheme not in ("http", "https"):
        refuse(f"must start with https:// (or http:// for a local sandbox), not {parsed.scheme!r}")
    if not parsed.host:
        refuse("names no host; use for example https://api.stability.ai")
    if parsed.query or parsed.fragment:
        refuse("must not have a query string or fragment")
