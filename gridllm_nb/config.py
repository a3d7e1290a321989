"""Where to send jobs and with which token.

Also the one reader of ``KEY=VALUE`` settings (``--option``, ``%gridllm config``).

Precedence for the endpoint: argument > ``GRIDLLM_API_URL`` > config file >
the embedded local service. The token comes from the argument or
``GRIDLLM_API_TOKEN`` only (never from a file we might print), and lives in a
``Secret`` whose repr and str hide it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

__all__ = [
    "API_PREFIX",
    "DEFAULT_HOST",
    "DEFAULT_LOCAL_URL",
    "DEFAULT_PORT",
    "GRIDREPUBLIC_URL",
    "TOKEN_ENV",
    "URL_ENV",
    "Endpoint",
    "Secret",
    "config_path",
    "is_loopback",
    "load_file_config",
    "mask_credentials",
    "parse_assignments",
    "resolve_endpoint",
]

API_PREFIX = "/remotejobs/v2"  # the path every jobs API base ends in, ours included
DEFAULT_HOST = "127.0.0.1"  # where the embedded service listens unless told otherwise
DEFAULT_PORT = 8765
DEFAULT_LOCAL_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}{API_PREFIX}"  # the one default URL
GRIDREPUBLIC_URL = "https://api.gridrepublic.services/remotejobs/v2"
URL_ENV = "GRIDLLM_API_URL"
TOKEN_ENV = "GRIDLLM_API_TOKEN"
CONFIG_ENV = "GRIDLLM_CONFIG"
APP = "gridrepublic:text-inference"


class Secret:
    """A token that never shows itself in a repr, str, f-string or traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    @classmethod
    def of(cls, token: str | Secret | None) -> Secret | None:
        """``token`` as a Secret (a Secret as it is; None stays None): what every ``token=`` argument takes."""
        return token if token is None or isinstance(token, Secret) else cls(token)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def config_path() -> Path:
    """The user's config file: ``$GRIDLLM_CONFIG`` or ``~/.config/gridllm_nb/config.toml``."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "gridllm_nb" / "config.toml"


def _toml() -> Any:
    """The TOML reader, loaded when a config file is read, not with the package."""
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    import tomli  # pragma: no cover - Python 3.10 only

    return tomli  # pragma: no cover


def load_file_config() -> dict[str, Any]:
    """The ``[gridllm]`` table of the config file, or {} when there is none."""
    path = config_path()
    try:
        with path.open("rb") as fh:
            data = _toml().load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, _toml().TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    section = data.get("gridllm", data)
    return section if isinstance(section, dict) else {}


def _check_url(url: object) -> str:
    """The API base URL, checked once for every front end: http(s), a host, a port in range,
    printable characters only. Messages show it with any password masked."""
    if not isinstance(url, str):
        raise ConfigError(f"the URL must be text (a str), not {type(url).__name__}")
    shown = mask_credentials(url)
    try:
        url.encode("utf-8")
        parts = urlsplit(url.strip())
        port = parts.port  # raises for a port out of range or not a number
        host = parts.hostname
    except (ValueError, UnicodeError) as exc:
        raise ConfigError(f"cannot parse the URL {shown!r} ({_reason(exc)}); "
                          f"give the API base, e.g. {GRIDREPUBLIC_URL}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"not an http(s) URL: {shown!r}; give the API base, e.g. {GRIDREPUBLIC_URL}")
    if any(not c.isprintable() or c.isspace() for c in url.strip()):
        raise ConfigError(f"the URL {shown!r} holds a space or a control character")
    if port == 0:
        raise ConfigError(f"the URL {shown!r} names port 0; ports are 1 to 65535")
    return url.strip().rstrip("/")


def _reason(exc: Exception) -> str:
    """Why ``urlsplit`` refused a URL, without echoing any part of it."""
    message = str(exc)
    if isinstance(exc, UnicodeError):
        return "not valid Unicode text"
    if message.startswith("Port out of range"):
        return "its port is not in 1-65535"
    if message.startswith("Port could not be cast"):
        return "its port is not a number"
    if "IPv6" in message:
        return "an IPv6 host needs both of its brackets"
    return "unreadable"


def _check_token(token: str) -> str:
    """A token an HTTP header can carry: printable ASCII, no spaces. Its value is never shown."""
    if not all(" " < c < "\x7f" for c in token):
        raise ConfigError("the API token holds characters an HTTP header cannot carry "
                          "(only printable ASCII without spaces): check GRIDLLM_API_TOKEN or the token argument")
    return token


def is_loopback(url_or_host: str) -> bool:
    """Whether a URL (or a bare host) points at this machine: ``localhost`` or a loopback address."""
    host = urlsplit(url_or_host).hostname if "://" in url_or_host else url_or_host.strip("[]")
    host = (host or "").lower()
    if host == "localhost":
        return True
    try:
        import ipaddress  # loaded with the first URL, not with %load_ext

        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Endpoint:
    """A resolved API base URL and token; ``is_default`` means nobody chose it."""

    url: str
    token: Secret | None = field(default=None)
    is_default: bool = False

    @cached_property
    def is_local(self) -> bool:  # asked for every job a grid sends
        return is_loopback(self.url)

    @property
    def display(self) -> str:
        """The URL as messages show it: a password in it masked."""
        return mask_credentials(self.url)


# The password runs to the last ``@`` before the path (as ``urlsplit`` reads it), so it may hold an ``@``.
_USERINFO_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/?#@\s:]*:)[^/?#\s]*@")


def mask_credentials(text: str) -> str:
    """Every ``scheme://user:password@`` in ``text`` with the password as ``***``."""
    return _USERINFO_PASSWORD.sub(lambda m: m.group("head") + "***@", str(text))


def resolve_endpoint(base_url: str | None = None, token: str | Secret | None = None) -> Endpoint:
    """Apply the precedence rules once, for every front end."""
    is_default = False
    if base_url:
        url = base_url
    elif os.environ.get(URL_ENV):
        url = os.environ[URL_ENV]
    else:
        url = load_file_config().get("url") or ""
        if not url:
            url, is_default = DEFAULT_LOCAL_URL, True
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    if not (token is None or isinstance(token, (str, Secret))):
        raise ConfigError(f"the token must be text (a str) or None, not {type(token).__name__}")
    secret = Secret.of(token) or None
    if secret is not None:
        _check_token(secret.reveal())
    return Endpoint(url=_check_url(url), token=secret, is_default=is_default)


def parse_assignments(pairs: Iterable[str], *, what: str, json_values: bool = False) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as a dict; a pair without a key or ``=`` is a ``ConfigError`` naming ``what``.

    With ``json_values`` a value that reads as JSON is that value (``8``,
    ``0.5``, ``["\\n"]``), anything else stays text; without, every value stays
    text for whoever converts it (traitlets, for ``%gridllm config``).
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} wants KEY=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
        if json_values:
            try:
                out[key.strip()] = json.loads(value)
            except ValueError:
                out[key.strip()] = value
            try:
                json.dumps(out[key.strip()], allow_nan=False)
            except ValueError:
                raise ConfigError(f"{what} {key.strip()}: {value.strip()!r} is not a finite number") from None
    return out

