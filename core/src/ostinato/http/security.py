"""Who may call the HTTP API: API keys with scopes, Host and Origin checks, JSON bodies.

Every request passes :class:`SecurityMiddleware` before it reaches an endpoint:

1. its ``Host`` must be one of the allowed host names (this defeats DNS rebinding: a page on
   ``attacker.example`` that re-points its name at 127.0.0.1 still sends
   ``Host: attacker.example``);
2. an ``Origin`` header, when present, must be this server's own origin or an allowed one
   (browsers send it on every cross-site ``POST``/``DELETE``, so a web page cannot drive the
   API, whatever content type it picks);
3. a request with a body must declare it as JSON (``415`` otherwise): HTML forms and
   ``text/plain`` "simple requests" are refused before anything reads them;
4. with keys configured, the request must carry one (``x-api-key``, ``Authorization: Bearer``
   or the dashboard's session cookie); its :class:`Scope` set is what the endpoint checks.
   Wrong keys are counted per client address (:mod:`ostinato.http.ratelimit`): after ten,
   the address gets ``429`` for any key it sends, for a while.

Without keys every caller is :data:`ANONYMOUS`, with every scope: for local development on a
loopback address only (``ostinato serve`` refuses other addresses without keys unless told
``--insecure-no-auth``).
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
import logging
import os
import time
import tomllib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope

from ostinato.http.params import ApiError
from ostinato.http.ratelimit import FailedAttempts, too_many_message

Endpoint = Callable[[Request], Awaitable[Response]]

#: Host names of the loopback interface.
LOOPBACK_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")

#: The cookie holding a dashboard session.
SESSION_COOKIE = "ostinato_session"

#: How long a dashboard session lasts, in seconds.
SESSION_SECONDS = 12 * 3600

#: Destructive calls are logged here (who, what, from where, the answer).
audit_log = logging.getLogger("ostinato.http.audit")

_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Scope(enum.Enum):
    """What a key may do. Each endpoint needs one scope."""

    #: Read statuses, lists, histories, entities, the schema and the dashboard.
    READ = "read"
    #: Start orchestrations, raise events, signal entities.
    START = "start"
    #: Terminate, suspend, resume, purge (one or in bulk) and re-drive dead letters.
    MANAGE = "manage"


ALL_SCOPES: frozenset[Scope] = frozenset(Scope)


@dataclass(frozen=True)
class ApiKey:
    """A named API key and the scopes it grants."""

    name: str
    secret: str = field(repr=False)
    scopes: frozenset[Scope] = ALL_SCOPES

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("An API key needs a non-empty name")
        if not self.secret or self.secret != self.secret.strip():
            raise ValueError(
                f"API key {self.name!r} is empty or has surrounding whitespace; "
                "an empty key would disable authentication"
            )
        if not self.scopes:
            raise ValueError(f"API key {self.name!r} grants no scope")

    def matches(self, given: str) -> bool:
        """Whether ``given`` is this key (compared in constant time)."""
        return hmac.compare_digest(given.encode("utf-8"), self.secret.encode("utf-8"))


@dataclass(frozen=True)
class Principal:
    """The caller of a request: a key's name and scopes, or anonymous."""

    name: str
    scopes: frozenset[Scope]


#: The caller when no keys are configured (local development).
ANONYMOUS = Principal("anonymous", ALL_SCOPES)

#: A caller without credentials on a public path (the dashboard's login page): no scope.
NOBODY = Principal("nobody", frozenset())


def parse_scopes(values: Iterable[str], where: str) -> frozenset[Scope]:
    """Scope names (``read``, ``start``, ``manage``) as :class:`Scope` values."""
    known = {scope.value: scope for scope in Scope}
    scopes: set[Scope] = set()
    for value in values:
        if value not in known:
            raise ValueError(
                f"{where}: unknown scope {value!r}; expected some of {', '.join(known)}"
            )
        scopes.add(known[value])
    return frozenset(scopes)


def load_keys_file(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> list[ApiKey]:
    """The keys of a TOML file: ``[[keys]]`` tables with ``name``, ``key`` and ``scopes``.

    ``key_env = "VAR"`` reads the key from an environment variable instead of the file.
    """
    location = Path(path)
    try:
        document = tomllib.loads(location.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"Cannot read the API keys file {location}: {exc}") from None
    tables = document.get("keys")
    if not isinstance(tables, list) or not tables:
        raise ValueError(f"{location}: expected one or more [[keys]] tables")
    keys: list[ApiKey] = []
    for index, table in enumerate(tables, 1):
        where = f"{location}, key #{index}"
        if not isinstance(table, dict):
            raise ValueError(f"{where}: expected a table")
        name = table.get("name")
        if not isinstance(name, str):
            raise ValueError(f"{where}: 'name' must be a string")
        secret = table.get("key")
        if "key_env" in table:
            secret = (os.environ if environ is None else environ).get(str(table["key_env"]))
            if secret is None:
                raise ValueError(f"{where}: environment variable {table['key_env']} is not set")
        if not isinstance(secret, str):
            raise ValueError(f"{where}: give the key as 'key' or 'key_env'")
        scopes = table.get("scopes", [scope.value for scope in Scope])
        if not isinstance(scopes, list):
            raise ValueError(f"{where}: 'scopes' must be a list")
        keys.append(ApiKey(name, secret, parse_scopes(map(str, scopes), where)))
    names = [key.name for key in keys]
    if len(set(names)) != len(names):
        raise ValueError(f"{location}: key names must be unique")
    return keys


def keys_from_environment(
    environ: Mapping[str, str], keys_file: str | os.PathLike[str] | None = None
) -> list[ApiKey]:
    """Keys from ``keys_file`` (or ``OSTINATO_API_KEYS_FILE``) and ``OSTINATO_API_KEY``.

    ``OSTINATO_API_KEY`` is one key named ``default`` with every scope; set but empty, it is
    an error (it would otherwise silently turn authentication off).
    """
    keys: list[ApiKey] = []
    path = keys_file or environ.get("OSTINATO_API_KEYS_FILE")
    if path:
        keys.extend(load_keys_file(path, environ))
    if "OSTINATO_API_KEY" in environ:
        value = environ["OSTINATO_API_KEY"]
        if not value.strip():
            raise ValueError(
                "OSTINATO_API_KEY is set but empty; unset it, or give it a key "
                "(an empty key would turn authentication off)"
            )
        keys.append(ApiKey("default", value))
    return keys


def host_matches(host: str, patterns: Sequence[str]) -> bool:
    """Whether ``host`` (no port) is allowed: exact names, ``*.example.com``, or ``*``."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern == "*" or pattern == host:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def host_name(host_header: str) -> str:
    """The name part of a ``Host`` header: ``example.com:8080`` -> ``example.com``."""
    if host_header.startswith("["):  # [::1]:8080
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    name, _, _ = host_header.partition(":")
    return name


class Sessions:
    """Signed dashboard session cookies: ``<key name>.<expiry>.<mac>``.

    The MAC covers the key itself, so changing or removing a key ends its sessions.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, key: ApiKey, expires: int) -> str:
        fingerprint = hashlib.sha256(key.secret.encode("utf-8")).hexdigest()
        message = f"{key.name}\n{expires}\n{fingerprint}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def issue(self, key: ApiKey, now: float | None = None) -> str:
        """A session cookie value for ``key``, valid for :data:`SESSION_SECONDS`."""
        expires = int((time.time() if now is None else now) + SESSION_SECONDS)
        return f"{key.name}.{expires}.{self._mac(key, expires)}"

    def check(self, cookie: str, keys: Sequence[ApiKey]) -> ApiKey | None:
        """The key a valid, unexpired session cookie was issued for, else None."""
        parts = cookie.rsplit(".", 2)
        if len(parts) != 3:
            return None
        name, expiry, mac = parts
        if not expiry.isdigit() or int(expiry) < time.time():
            return None
        for key in keys:
            if key.name == name and hmac.compare_digest(mac, self._mac(key, int(expiry))):
                return key
        return None


@dataclass(frozen=True)
class AccessPolicy:
    """Who may reach the API, and from where.

    :param keys: the API keys; none means every caller is :data:`ANONYMOUS`.
    :param allowed_hosts: ``Host`` names served (``*.example.com`` and ``*`` allowed).
    :param allowed_origins: browser origins besides the API's own that may call it
        (``https://ops.example.com``).
    :param secret: signs continuation tokens and dashboard sessions.
    """

    keys: tuple[ApiKey, ...]
    allowed_hosts: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    secret: bytes

    def __post_init__(self) -> None:
        names = [key.name for key in self.keys]
        if len(set(names)) != len(names):
            raise ValueError("API key names must be unique")
        if not self.allowed_hosts:
            raise ValueError("allowed_hosts must name at least one host (or '*')")

    @property
    def requires_key(self) -> bool:
        return bool(self.keys)

    @property
    def sessions(self) -> Sessions:
        return Sessions(self.secret)

    def key_for(self, given: str) -> ApiKey | None:
        found = None
        for key in self.keys:  # check all: the time taken doesn't tell which one matched
            if key.matches(given):
                found = key
        return found


def _error(status_code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code, headers=headers)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class SecurityMiddleware:
    """Host, Origin, content type and key checks (see the module docstring).

    ``public_paths`` (exact paths) and ``public_prefixes`` (everything below them), relative
    to the app's mount, pass without a key, as :data:`NOBODY`: the dashboard's pages, which
    send such callers to the login page. The caller's :class:`Principal` is left in
    ``scope["state"]``.
    """

    def __init__(
        self,
        app: ASGIApp,
        policy: AccessPolicy,
        public_paths: Sequence[str] = (),
        public_prefixes: Sequence[str] = (),
        attempts: FailedAttempts | None = None,
    ) -> None:
        self.app = app
        self.policy = policy
        self.attempts = attempts if attempts is not None else FailedAttempts()
        self.public_exact = frozenset(public_paths)
        self.public_prefixes = tuple(public_prefixes)

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: AsgiScope) -> JSONResponse | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not host_matches(host_name(host), self.policy.allowed_hosts):
            return _error(
                400,
                f"Host {host!r} is not served here (allowed hosts are configured with "
                "--allowed-host / allowed_hosts)",
            )
        origin = headers.get("origin")
        if origin is not None and not self._origin_allowed(origin, host):
            return _error(
                403,
                f"Cross-origin request from {origin!r} refused: only this server's own pages "
                "and allowed origins may call it",
            )
        if scope["method"] in _UNSAFE_METHODS:
            content_type = headers.get("content-type")
            has_body = "transfer-encoding" in headers or headers.get("content-length", "0") != "0"
            if (content_type is not None or has_body) and not _is_json(content_type or ""):
                return _error(
                    415,
                    "Request bodies must be JSON: send 'Content-Type: application/json' "
                    f"(got {content_type or 'none'})",
                )
        client = scope.get("client")
        address = client[0] if client else None
        principal = self._principal(headers, address)
        if isinstance(principal, int):
            return _error(
                429, too_many_message(address, principal), {"Retry-After": str(principal)}
            )
        if principal is None and self._is_public(scope):
            principal = NOBODY
        if principal is None:
            return _error(
                401,
                "Missing API key: send it in the 'x-api-key' header or as "
                "'Authorization: Bearer <key>'",
                {"WWW-Authenticate": 'Bearer realm="ostinato"'},
            )
        if isinstance(principal, str):
            return _error(401, principal, {"WWW-Authenticate": 'Bearer realm="ostinato"'})
        scope.setdefault("state", {})["ostinato.principal"] = principal
        return None

    def _origin_allowed(self, origin: str, host: str) -> bool:
        if origin in self.policy.allowed_origins:
            return True
        # The same host and port as the request's Host: this server's own pages. The scheme is
        # not compared, so a TLS-terminating proxy in front needs no extra setting.
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()

    def _is_public(self, scope: AsgiScope) -> bool:
        path = scope["path"][len(scope.get("root_path", "")) :]
        return path in self.public_exact or path.startswith(self.public_prefixes)

    def _principal(self, headers: Headers, address: str | None) -> Principal | str | int | None:
        """The caller, an error message for a wrong key, seconds to wait for an address with
        too many wrong keys, or None when no key was sent."""
        if not self.policy.requires_key:
            return ANONYMOUS
        given = headers.get("x-api-key")
        if given is None:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                given = token.strip()
        if given is not None:
            wait = self.attempts.retry_after(address)
            if wait is not None:
                return wait
            key = self.policy.key_for(given)
            if key is None:
                self.attempts.failed(address)
                return "Invalid API key"
            return Principal(key.name, key.scopes)
        cookie = _cookie(headers, SESSION_COOKIE)
        if cookie is not None:
            key = self.policy.sessions.check(cookie, self.policy.keys)
            if key is not None:
                return Principal(key.name, key.scopes)
        return None


def _cookie(headers: Headers, name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def principal(request: Request) -> Principal:
    """The caller of ``request`` (set by :class:`SecurityMiddleware`)."""
    found = request.scope.get("state", {}).get("ostinato.principal")
    return found if isinstance(found, Principal) else NOBODY


def audit(request: Request, action: str, status_code: int, detail: str = "") -> None:
    """Log a destructive call: who, what, from where, and the answer."""
    client = request.client
    audit_log.info(
        "%s by %s from %s: %s %s -> %d%s",
        action,
        principal(request).name,
        f"{client.host}:{client.port}" if client else "?",
        request.method,
        request.url.path,
        status_code,
        f" ({detail})" if detail else "",
    )


def authorize(request: Request, scope: Scope) -> Principal:
    """The caller, if it holds ``scope``; otherwise ``403``."""
    caller = principal(request)
    if scope not in caller.scopes:
        raise ApiError(
            403,
            f"API key {caller.name!r} lacks the {scope.value!r} scope needed for "
            f"{request.method} {request.url.path}",
        )
    return caller


def guarded(endpoint: Endpoint, scope: Scope, audited: bool = False) -> Endpoint:
    """``endpoint``, answering ``403`` to callers without ``scope``; ``audited`` calls are
    logged on :data:`audit_log` (refusals and failures too)."""

    async def run(request: Request) -> Response:
        try:
            authorize(request, scope)
            response = await endpoint(request)
        except ApiError as exc:
            if audited:
                audit(request, endpoint.__name__, exc.status_code, exc.message)
            raise
        except Exception as exc:
            if audited:
                audit(request, endpoint.__name__, 500, type(exc).__name__)
            raise
        if audited:
            audit(request, endpoint.__name__, response.status_code)
        return response

    functools.update_wrapper(run, endpoint)
    return run


def policy(
    *,
    keys: Iterable[ApiKey] = (),
    allowed_hosts: Iterable[str] = LOOPBACK_HOSTS,
    allowed_origins: Iterable[str] = (),
    secret: bytes | None = None,
) -> AccessPolicy:
    """An :class:`AccessPolicy`; ``secret`` defaults to random bytes of this process."""
    return AccessPolicy(
        keys=tuple(keys),
        allowed_hosts=tuple(allowed_hosts),
        allowed_origins=tuple(o.rstrip("/") for o in allowed_origins),
        secret=secret if secret is not None else os.urandom(32),
    )


__all__ = [
    "ALL_SCOPES",
    "ANONYMOUS",
    "LOOPBACK_HOSTS",
    "NOBODY",
    "SESSION_COOKIE",
    "AccessPolicy",
    "ApiKey",
    "Principal",
    "Scope",
    "SecurityMiddleware",
    "Sessions",
    "audit",
    "audit_log",
    "authorize",
    "guarded",
    "host_matches",
    "keys_from_environment",
    "load_keys_file",
    "parse_scopes",
    "policy",
    "principal",
]
