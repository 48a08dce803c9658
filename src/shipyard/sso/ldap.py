"""LDAP, the protocol: search bind with the service account, find the user, bind as them to check
the password, read their groups (by member or memberOf). Uses ldap3 (synchronous) on a thread.
Calls the network; never touches the database.

Each attempt checks the directory's host with the outbound policy, then connects to the checked
address (so a name cannot resolve elsewhere between the check and the connect) while TLS still
validates the certificate against the configured name. TLS validation is always on: ``ldaps://``
or StartTLS, trusting ``ca_certificate`` (PEM) or the system's store. Referrals are not followed
(they would lead to hosts the policy never saw).

Every failure is an :class:`SsoFailed` whose message is safe to show: a wrong user and a wrong
password read the same; nothing says what the service account's password or the user's is.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import ssl
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

# ldap3 2.9.1 imports pyasn1's old names (tagMap, typeMap), which pyasn1 >= 0.6 answers with
# a DeprecationWarning; nothing here uses them. Silenced for this import only.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="pyasn1.*")
    warnings.filterwarnings("ignore", message=".* is deprecated. Please use .* instead")
    from ldap3 import BASE, NONE, SUBTREE, Connection, Server, Tls
    from ldap3.core.exceptions import LDAPException, LDAPSocketOpenError, LDAPStartTLSError
    from ldap3.utils.conv import escape_filter_chars
    from ldap3.utils.dn import parse_dn, to_dn

from shipyard.outbound.errors import OutboundRefused
from shipyard.outbound.policy import IPAddress, OutboundPolicy
from shipyard.sso.identity import ExternalIdentity, SsoFailed

logger = logging.getLogger(__name__)

WRONG_CREDENTIALS = "wrong user name or password"
DEFAULT_PORTS = {"ldap": 389, "ldaps": 636}
GROUP_SEARCHES = {"member": "member", "memberof": "memberOf"}
USERNAME_PLACEHOLDER = "{username}"
MAX_USERNAME_LENGTH = 256
MAX_PASSWORD_LENGTH = 1024
MAX_TIMEOUT_SECONDS = 120
# Nested groups: how many levels above the user's own groups are followed, how many groups are
# read in all (a directory's cycles and very wide trees end there), and how many members one
# group search names (a level wider than that takes several searches).
NESTING_DEPTH = 10
MAX_GROUPS = 1000
MEMBERS_PER_SEARCH = 50
# Result codes (RFC 4511) the messages tell apart.
INVALID_CREDENTIALS = 49
NO_SUCH_OBJECT = 32
SIZE_LIMIT_EXCEEDED = 4
_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")


class LdapConfigError(ValueError):
    """A directory setting that cannot work; ``field`` names it (a 422 for whoever set it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _text(config: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = config.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise LdapConfigError(name, "is required")
        return None
    if not isinstance(value, str):
        raise LdapConfigError(name, "must be a string")
    return value.strip()


def _filter(value: str, name: str) -> str:
    depth = 0
    for char in value:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            break
    if not (value.startswith("(") and value.endswith(")")) or depth != 0:
        raise LdapConfigError(name, "must be an LDAP filter in parentheses, e.g. (uid={username})")
    return value


def _attribute(value: str, name: str) -> str:
    if not _ATTRIBUTE.match(value):
        raise LdapConfigError(name, "must be an attribute name such as cn or mail")
    return value


def _ca_certificate(value: str | None) -> str | None:
    if value is None:
        return None
    if "-----BEGIN CERTIFICATE-----" not in value:
        raise LdapConfigError("ca_certificate", "must be one or more PEM certificates")
    try:
        ssl.create_default_context(cadata=value)
    except (ssl.SSLError, ValueError) as exc:
        raise LdapConfigError("ca_certificate", "is not a readable PEM certificate") from exc
    return value


@dataclass(frozen=True)
class LdapConfig:
    """A directory's plain settings (``sso_providers.config`` of kind ``ldap``)."""

    url: str  # ldap://host:389 or ldaps://host:636
    bind_dn: str
    user_base: str
    user_filter: str = "(&(objectClass=inetOrgPerson)(uid={username}))"
    start_tls: bool = False
    ca_certificate: str | None = None  # PEM; None: the system's CA store
    group_search: str = "member"  # "member": search groups; "memberOf": read the user's attribute
    group_base: str | None = None
    group_filter: str = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"
    group_name_attribute: str = "cn"
    nested_groups: bool = False  # also the groups of the user's groups, up to NESTING_DEPTH up
    # Hourly, the linked members are looked up again: gone or roleless ones are disabled.
    directory_check: bool = True
    email_attribute: str = "mail"
    name_attribute: str = "cn"
    timeout_seconds: float = 10.0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LdapConfig:
        """Check and normalise stored or submitted settings; :class:`LdapConfigError` (a
        ValueError naming the field) for the first that cannot work."""
        known = {item.name for item in fields(cls)}
        for name in config:
            if name not in known:
                raise LdapConfigError(name, "is not an LDAP setting")
        url = _text(config, "url", required=True)
        assert url is not None
        _parse_url(url)
        start_tls = config.get("start_tls", False)
        if not isinstance(start_tls, bool):
            raise LdapConfigError("start_tls", "must be true or false")
        if start_tls and url.lower().startswith("ldaps://"):
            raise LdapConfigError("start_tls", "ldaps:// is TLS already: use one or the other")
        user_filter = _filter(_text(config, "user_filter") or cls.user_filter, "user_filter")
        if USERNAME_PLACEHOLDER not in user_filter:
            raise LdapConfigError("user_filter", "must contain {username}")
        group_search = GROUP_SEARCHES.get(
            (_text(config, "group_search") or cls.group_search).lower()
        )
        if group_search is None:
            raise LdapConfigError("group_search", "must be member or memberOf")
        group_base = _text(config, "group_base")
        user_base = _text(config, "user_base", required=True)
        assert user_base is not None
        if group_search == "member" and group_base is None:
            group_base = directory_suffix(user_base)
        timeout = config.get("timeout_seconds", cls.timeout_seconds)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise LdapConfigError("timeout_seconds", "must be a number of seconds")
        if not 0 < timeout <= MAX_TIMEOUT_SECONDS:
            raise LdapConfigError(
                "timeout_seconds", f"must be more than 0 and at most {MAX_TIMEOUT_SECONDS} seconds"
            )
        bind_dn = _text(config, "bind_dn", required=True)
        assert bind_dn is not None
        nested_groups = config.get("nested_groups", False)
        if not isinstance(nested_groups, bool):
            raise LdapConfigError("nested_groups", "must be true or false")
        directory_check = config.get("directory_check", True)
        if not isinstance(directory_check, bool):
            raise LdapConfigError("directory_check", "must be true or false")
        return cls(
            url=url,
            bind_dn=bind_dn,
            user_base=user_base,
            user_filter=user_filter,
            start_tls=start_tls,
            ca_certificate=_ca_certificate(_text(config, "ca_certificate")),
            group_search=group_search,
            group_base=group_base,
            group_filter=_filter(_text(config, "group_filter") or cls.group_filter, "group_filter"),
            group_name_attribute=_attribute(
                _text(config, "group_name_attribute") or cls.group_name_attribute,
                "group_name_attribute",
            ),
            nested_groups=nested_groups,
            directory_check=directory_check,
            email_attribute=_attribute(
                _text(config, "email_attribute") or cls.email_attribute, "email_attribute"
            ),
            name_attribute=_attribute(
                _text(config, "name_attribute") or cls.name_attribute, "name_attribute"
            ),
            timeout_seconds=float(timeout),
        )

    @property
    def host(self) -> str:
        return _parse_url(self.url)[1]

    @property
    def port(self) -> int:
        return _parse_url(self.url)[2]

    @property
    def use_ssl(self) -> bool:
        return _parse_url(self.url)[0] == "ldaps"

    @property
    def whole_seconds(self) -> int:
        """The timeout as ldap3's receive timeout and the server's time limit take it."""
        return max(1, math.ceil(self.timeout_seconds))


def directory_suffix(user_base: str) -> str:
    """Where to search groups when no ``group_base`` is set: the ``dc=`` tail of ``user_base``
    (``ou=people,dc=example,dc=org`` → ``dc=example,dc=org``), else ``user_base`` itself."""
    try:
        rdns = to_dn(user_base)
    except LDAPException:
        return user_base
    tail: list[str] = []
    for rdn in reversed(rdns):
        if not rdn.strip().lower().startswith("dc="):
            break
        tail.insert(0, rdn.strip())
    return ",".join(tail) if tail else user_base


def _parse_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an ``ldap://`` or ``ldaps://`` URL with nothing after it."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise LdapConfigError("url", "is not a valid URL") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise LdapConfigError("url", "must start with ldap:// or ldaps://")
    if not parts.hostname:
        raise LdapConfigError("url", "must name the directory's host")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise LdapConfigError(
            "url", "must be only ldap(s)://host[:port]; the bases and filters are separate"
        )
    return scheme, parts.hostname, port or DEFAULT_PORTS[scheme]


# -- connections ---------------------------------------------------------------------------------


class _CheckedTls(Tls):  # type: ignore[misc]  # ldap3 has no type hints
    """ldap3's TLS with Python's own checks: the chain against our CA and the certificate's
    names against the configured host, although the socket goes to the address we checked."""

    def __init__(self, context: ssl.SSLContext, server_name: str) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED)
        self._context = context
        self._server_name = server_name

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        connection.socket = self._context.wrap_socket(
            connection.socket,
            server_side=False,
            do_handshake_on_connect=do_handshake,
            server_hostname=self._server_name,
        )


def _ssl_context(config: LdapConfig) -> ssl.SSLContext:
    # Python's defaults: chain and host name checked; our CA when given, else the system's.
    context = ssl.create_default_context(cadata=config.ca_certificate)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@dataclass(frozen=True)
class _Target:
    config: LdapConfig
    address: IPAddress

    def server(self) -> Server:
        return Server(
            str(self.address),
            port=self.config.port,
            use_ssl=self.config.use_ssl,
            tls=_CheckedTls(_ssl_context(self.config), self.config.host),
            get_info=NONE,
            connect_timeout=self.config.timeout_seconds,
        )


def _describe_tls(exc: BaseException) -> str | None:
    """What went wrong with TLS, in words (None: not a TLS problem)."""
    text = str(exc)
    if "Hostname mismatch" in text or "IP address mismatch" in text:
        return "the directory's TLS certificate is not valid for its host name"
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        detail = text.split("certificate verify failed:", 1)[-1].split("(_ssl", 1)[0].strip(" )")
        return f"the directory's TLS certificate is not trusted ({detail or 'verify failed'})"
    if "SSL" in text or "wrap socket error" in text or "ssl wrapping error" in text:
        return "the TLS handshake with the directory failed"
    return None


def _failure(config: LdapConfig, exc: LDAPException) -> SsoFailed:
    where = f"{config.host}:{config.port}"
    tls = _describe_tls(exc)
    if tls is not None:
        return SsoFailed(f"could not sign in: {tls} ({where})")
    if isinstance(exc, LDAPStartTLSError):
        return SsoFailed(f"could not sign in: the directory at {where} refused StartTLS")
    if isinstance(exc, LDAPSocketOpenError):
        return SsoFailed(f"could not sign in: the directory at {where} cannot be reached")
    return SsoFailed(f"could not sign in: the directory at {where} failed ({type(exc).__name__})")


@contextmanager
def _bound(target: _Target, server: Server, *, user: str, password: str) -> Iterator[Connection]:
    """An open connection (TLS started if asked) bound as ``user``; SsoFailed otherwise.

    A wrong password raises :class:`_InvalidCredentials` for the caller to word.
    """
    config = target.config
    connection = Connection(
        server,
        user=user,
        password=password,
        auto_bind=False,
        raise_exceptions=False,
        receive_timeout=config.whole_seconds,
        auto_referrals=False,
        read_only=True,
        return_empty_attributes=False,
    )
    try:
        connection.open()
        if config.start_tls and not connection.start_tls():
            raise SsoFailed(
                f"could not sign in: the directory at {config.host}:{config.port} refused StartTLS"
            )
        if not connection.bind():
            if connection.result.get("result") == INVALID_CREDENTIALS:
                raise _InvalidCredentials
            description = connection.result.get("description") or "an error"
            raise SsoFailed(f"could not sign in: the directory refused the bind ({description})")
        yield connection
    finally:
        # After a failed TLS handshake the socket is gone: saying goodbye would fail and hide
        # the reason. Whatever happens, the socket is closed.
        with suppress(LDAPException, OSError):
            connection.unbind()
        if connection.socket is not None:
            with suppress(OSError):
                connection.socket.close()


class _InvalidCredentials(Exception):
    """The bind's DN and password were refused (result 49)."""


class _UnknownUser(Exception):
    """The user filter matched no entry, or several: worded as a wrong password."""


def _entries(connection: Connection) -> list[dict[str, Any]]:
    return [item for item in connection.response or [] if item.get("type") == "searchResEntry"]


def _values(entry: dict[str, Any], attribute: str) -> list[str]:
    value = (entry.get("attributes") or {}).get(attribute)
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [str(item) for item in items if str(item)]


def _first_rdn_value(dn: str) -> str | None:
    try:
        parsed = parse_dn(dn)
    except LDAPException:
        return None
    return str(parsed[0][1]) if parsed else None


def _user_attributes(config: LdapConfig) -> list[str]:
    """What is read of a user's entry: e-mail, name and, for memberOf, their groups."""
    attributes = [config.email_attribute, config.name_attribute]
    if config.group_search == "memberOf":
        attributes.append("memberOf")
    return attributes


def _find_user(connection: Connection, config: LdapConfig, username: str) -> dict[str, Any]:
    search_filter = config.user_filter.replace(USERNAME_PLACEHOLDER, escape_filter_chars(username))
    connection.search(
        config.user_base,
        search_filter,
        search_scope=SUBTREE,
        attributes=_user_attributes(config),
        size_limit=2,
        time_limit=config.whole_seconds,
    )
    code = connection.result.get("result")
    if code == NO_SUCH_OBJECT:
        raise SsoFailed(
            f"could not sign in: the directory has no entry {config.user_base} (user_base)"
        )
    entries = _entries(connection)
    if code not in (0, SIZE_LIMIT_EXCEEDED):
        description = connection.result.get("description") or "an error"
        raise SsoFailed(f"could not sign in: the user search failed ({description})")
    if len(entries) != 1:
        if entries:
            logger.warning("LDAP user filter matched more than one entry; refusing the sign-in")
        raise _UnknownUser
    return entries[0]


def _groups(connection: Connection, config: LdapConfig, entry: dict[str, Any]) -> list[str]:
    """The user's groups, each by its name attribute (cn) and its full DN; with
    ``nested_groups``, also the groups those are members of (up to NESTING_DEPTH levels)."""
    if config.group_search == "memberOf":
        found = _groups_by_member_of(connection, config, entry)
    else:
        found = _groups_by_member(connection, config, str(entry["dn"]))
    names: list[str] = []
    for group_dn, group_names in found:
        names.append(group_dn)
        names.extend(group_names)
    unique: dict[str, str] = {}
    for name in names:
        unique.setdefault(name.casefold(), name)
    return list(unique.values())


def _groups_by_member(
    connection: Connection, config: LdapConfig, user_dn: str
) -> list[tuple[str, list[str]]]:
    """Groups naming ``user_dn`` as a member (or uniqueMember); nested: then groups naming those,
    level by level, each group once (a cycle ends), at most MAX_GROUPS in all."""
    assert config.group_base is not None
    found: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    members = [user_dn]
    for _ in range(NESTING_DEPTH if config.nested_groups else 1):
        parents: list[str] = []
        # A level's members in filters of a bounded size (a large level is several searches).
        for start in range(0, len(members), MEMBERS_PER_SEARCH):
            clauses = "".join(
                f"(member={dn})(uniqueMember={dn})"
                for dn in map(escape_filter_chars, members[start : start + MEMBERS_PER_SEARCH])
            )
            connection.search(
                config.group_base,
                f"(&{config.group_filter}(|{clauses}))",
                search_scope=SUBTREE,
                attributes=[config.group_name_attribute],
                time_limit=config.whole_seconds,
            )
            if connection.result.get("result") == NO_SUCH_OBJECT:
                raise SsoFailed(
                    f"could not sign in: the directory has no entry {config.group_base} "
                    "(group_base)"
                )
            for group in _entries(connection):
                group_dn = str(group["dn"])
                if group_dn.casefold() in seen or len(seen) >= MAX_GROUPS:
                    continue
                seen.add(group_dn.casefold())
                found.append((group_dn, _values(group, config.group_name_attribute)))
                parents.append(group_dn)
        if not parents:
            break
        members = parents
    return found


def _groups_by_member_of(
    connection: Connection, config: LdapConfig, entry: dict[str, Any]
) -> list[tuple[str, list[str]]]:
    """The user's ``memberOf`` DNs (a group's name: its DN's first value); nested: then each
    group's own ``memberOf``, read from the group's entry, level by level, each group once."""
    found: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    level = _values(entry, "memberOf")
    for depth in range(NESTING_DEPTH if config.nested_groups else 1):
        parents: list[str] = []
        for group_dn in level:
            if group_dn.casefold() in seen or len(seen) >= MAX_GROUPS:
                continue
            seen.add(group_dn.casefold())
            short = _first_rdn_value(group_dn)
            found.append((group_dn, [short] if short else []))
            if not config.nested_groups or depth + 1 == NESTING_DEPTH:
                continue
            connection.search(
                group_dn,
                "(objectClass=*)",
                search_scope=BASE,
                attributes=["memberOf"],
                time_limit=config.whole_seconds,
            )
            for group in _entries(connection):
                parents.extend(_values(group, "memberOf"))
        if not parents:
            break
        level = parents
    return found


def _authenticate(
    target: _Target, *, bind_password: str, username: str, password: str
) -> ExternalIdentity:
    config = target.config
    server = target.server()
    try:
        try:
            with _bound(target, server, user=config.bind_dn, password=bind_password) as service:
                entry = _find_user(service, config, username)
                groups = _groups(service, config, entry)
        except _InvalidCredentials:
            raise SsoFailed(
                "could not sign in: the directory refused Shipyard's service account "
                f"({config.bind_dn}); an admin must check its bind DN and password"
            ) from None
        user_dn = str(entry["dn"])
        try:
            with _bound(target, server, user=user_dn, password=password):
                pass
        except _InvalidCredentials:
            raise SsoFailed(WRONG_CREDENTIALS) from None
    except _UnknownUser:
        raise SsoFailed(WRONG_CREDENTIALS) from None
    except LDAPException as exc:
        raise _failure(config, exc) from None
    except (OSError, ssl.SSLError) as exc:
        raise _failure(config, LDAPException(str(exc))) from None
    emails = _values(entry, config.email_attribute)
    names = _values(entry, config.name_attribute)
    return ExternalIdentity(
        subject=user_dn.lower(),
        email=emails[0] if emails else "",
        name=names[0] if names else None,
        groups=tuple(groups),
    )


@contextmanager
def _as_service_account(target: _Target, *, bind_password: str) -> Iterator[Connection]:
    """Bound as the service account; the directory's refusals and failures as SsoFailed."""
    config = target.config
    try:
        with _bound(
            target, target.server(), user=config.bind_dn, password=bind_password
        ) as service:
            yield service
    except _InvalidCredentials:
        raise SsoFailed(
            f"the directory refused the service account ({config.bind_dn}): "
            "check its bind DN and password"
        ) from None
    except LDAPException as exc:
        raise _failure(config, exc) from None
    except (OSError, ssl.SSLError) as exc:
        raise _failure(config, LDAPException(str(exc))) from None


def _check(target: _Target, *, bind_password: str) -> str:
    config = target.config
    with _as_service_account(target, bind_password=bind_password) as service:
        service.search(
            config.user_base,
            "(objectClass=*)",
            search_scope=BASE,
            attributes=["objectClass"],
            time_limit=config.whole_seconds,
        )
        if service.result.get("result") != 0:
            raise SsoFailed(
                f"the service account cannot read {config.user_base} (user_base): "
                f"{service.result.get('description') or 'an error'}"
            )
        service.search(
            config.user_base,
            config.user_filter.replace(USERNAME_PLACEHOLDER, "*"),
            search_scope=SUBTREE,
            attributes=[],
            size_limit=1000,
            time_limit=config.whole_seconds,
        )
        count = len(_entries(service))
        more = "+" if service.result.get("result") == SIZE_LIMIT_EXCEEDED else ""
    tls = "LDAPS" if config.use_ssl else ("StartTLS" if config.start_tls else "no TLS")
    return (
        f"bound as {config.bind_dn} at {config.host}:{config.port} ({tls}); "
        f"{count}{more} users match the user filter under {config.user_base}"
    )


async def _checked_target(
    config: LdapConfig, policy: OutboundPolicy, bind_password: str | None
) -> _Target:
    """The address to connect to, after the outbound policy approved every one the host has."""
    if not bind_password:
        # With no password the "service bind" would be anonymous, and search as nobody.
        raise SsoFailed(
            "could not sign in: the directory's service account has no password set; "
            "an admin must set it"
        )
    try:
        addresses = await policy.check_host(config.host, config.port)
    except OutboundRefused as exc:
        raise SsoFailed(f"could not sign in: {exc.message}") from None
    except OSError:
        raise SsoFailed(
            f"could not sign in: the directory's host {config.host} does not resolve"
        ) from None
    return _Target(config=config, address=addresses[0])


async def authenticate(
    config: LdapConfig,
    *,
    bind_password: str | None,
    username: str,
    password: str,
    policy: OutboundPolicy,
) -> ExternalIdentity:
    """The directory's word on ``username``/``password``: their identity and groups.

    Raises :class:`shipyard.sso.identity.SsoFailed` for a wrong user or password (one message
    for both), an unreachable or refusing directory, a bad service account.
    """
    username = username.strip()
    # An empty password would be an unauthenticated bind, which directories "accept".
    if (
        not username
        or not password
        or len(username) > MAX_USERNAME_LENGTH
        or len(password) > MAX_PASSWORD_LENGTH
    ):
        raise SsoFailed(WRONG_CREDENTIALS)
    target = await _checked_target(config, policy, bind_password)
    return await asyncio.to_thread(
        _authenticate,
        target,
        bind_password=bind_password or "",
        username=username,
        password=password,
    )


# At most this many linked people are looked up in one directory check of a provider.
MAX_RECHECKED = 10_000


def _recheck(
    target: _Target, *, bind_password: str, subjects: list[str]
) -> dict[str, ExternalIdentity | None]:
    config = target.config
    # The user filter, whoever the user: an entry that no longer matches it (an Active
    # Directory filter that leaves disabled accounts out) no longer signs in, so counts as gone.
    still_a_user = config.user_filter.replace(USERNAME_PLACEHOLDER, "*")
    attributes = _user_attributes(config)
    found: dict[str, ExternalIdentity | None] = {}
    with _as_service_account(target, bind_password=bind_password) as service:
        for subject in subjects:
            service.search(
                subject,
                still_a_user,
                search_scope=BASE,
                attributes=attributes,
                time_limit=config.whole_seconds,
            )
            code = service.result.get("result")
            entries = _entries(service)
            if code == NO_SUCH_OBJECT or (code == 0 and not entries):
                found[subject] = None
                continue
            if code != 0:
                # Never read a failed search as "gone": the whole check stops instead.
                description = service.result.get("description") or "an error"
                raise SsoFailed(f"the directory check's search failed ({description})")
            entry = entries[0]
            emails = _values(entry, config.email_attribute)
            names = _values(entry, config.name_attribute)
            found[subject] = ExternalIdentity(
                subject=subject,
                email=emails[0] if emails else "",
                name=names[0] if names else None,
                groups=tuple(_groups(service, config, entry)),
            )
    return found


async def recheck(
    config: LdapConfig,
    *,
    bind_password: str | None,
    subjects: list[str],
    policy: OutboundPolicy,
) -> dict[str, ExternalIdentity | None]:
    """What the directory says now of each linked person (their entry DN): their identity and
    groups, or None when the entry is gone or no longer matches the user filter.

    Raises :class:`SsoFailed` when the directory cannot be asked (then nothing is concluded).
    """
    target = await _checked_target(config, policy, bind_password)
    return await asyncio.to_thread(
        _recheck, target, bind_password=bind_password or "", subjects=subjects[:MAX_RECHECKED]
    )


async def check(config: LdapConfig, *, bind_password: str | None, policy: OutboundPolicy) -> str:
    """Connect and bind as the service account; a one-line description (or SsoFailed)."""
    target = await _checked_target(config, policy, bind_password)
    return await asyncio.to_thread(_check, target, bind_password=bind_password or "")
