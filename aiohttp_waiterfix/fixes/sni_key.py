"""Fix ``sni-key``: a request's ``server_hostname`` becomes part of its pool key (aiohttp PR #12835, 3.14.1).

aiohttp 3.9.0 - 3.14.0 let a request override the name its TLS certificate is
verified for (``server_hostname=``), but the pool key (``ConnectionKey``) does
not hold it: a connection verified for ``a.test`` is handed to a later request
that asked to verify ``b.test``, so ``b.test`` is never checked.

``_registry.SNI_KEY`` replaces the property ``ClientRequest.connection_key``
with one whose getter calls aiohttp's own getter.  A TLS request that sets
``server_hostname`` gets an :data:`SNIConnectionKey`: the release's own
``ConnectionKey`` plus one trailing field, ``server_hostname``, so it equals
only the keys of requests for the same name (its own class compares unequal to
every plain key).  Every other request gets the release's key object unchanged:
the common path costs one Python call and an ``is None`` test.

Why a replaced property and not a wrapt wrapper of its getter: a property calls
its getter unbound, ``fget(request)``, and wrapt's unbound call looks up
``__self__`` on the wrapped function, raising and clearing an AttributeError
every time: about 0.8 us per key on aiohttp 3.14.0, +35 % per pooled acquire.
The original getter is taken at import, which ``_patcher`` does only after
checking its fingerprint; the import checks it again, so a getter that is not
aiohttp's own code for this release is never called by ours.

Deliberate choices, none of which lets a connection verified for one name
serve another:

* the key is split whenever an override is set, even one equal to the host,
  as in 3.14.1 (3.9.x verifies the *resolver's* host name without an
  override, which a custom resolver may set to anything);
* unlike 3.14.1, plain-HTTP requests keep the release's key: the override is
  only ever used for TLS (3.14.1 splits those too, to no effect on what is
  verified);
* unlike 3.14.1, ``ConnectionKey`` itself is untouched, so code that builds
  one with seven fields keeps working; only the re-keyed requests carry eight.

This module is imported only once ``aiohttp.connector`` has been imported; it
refuses (raises at import, so the fix is refused with the reason) when the
release's ``ConnectionKey`` is not the attrs or NamedTuple class of seven
fields it knows.
"""

from __future__ import annotations

import collections
import operator
from typing import Any, Callable, Tuple

from aiohttp.client_reqrep import ClientRequest, ConnectionKey

KEY_FIELDS = ("host", "port", "is_ssl", "ssl", "proxy", "proxy_auth", "proxy_headers_hash")
"""``ConnectionKey``'s fields, in order, in every release 3.9.0 - 3.14.0."""


def _kind(key_class: Any) -> str:
    """``"attrs"`` (3.9.0 - 3.10.11) or ``"namedtuple"`` (3.11.0 - 3.14.0); raises for any other class."""
    attributes = getattr(key_class, "__attrs_attrs__", None)
    if attributes is not None:
        kind, names = "attrs", tuple(attribute.name for attribute in attributes)
    elif issubclass(key_class, tuple) and hasattr(key_class, "_fields"):
        kind, names = "namedtuple", tuple(key_class._fields)
    else:
        raise TypeError(f"aiohttp's ConnectionKey is a {type(key_class).__name__} we do not know")
    if names != KEY_FIELDS:
        raise TypeError(f"aiohttp's ConnectionKey has the fields {names}, not the {len(KEY_FIELDS)} we know")
    return kind


def _attrs_key_class(base: Any) -> Any:
    """An attrs subclass: attrs' ``__eq__`` wants the very same class, so it never equals a plain key.

    A plain subclass with an extra slot would inherit ``__eq__``/``__hash__``
    over seven fields and make ``a.test`` and ``b.test`` equal again.
    ``attr.evolve`` (the proxy tunnel's key) keeps the class and the name.
    """
    import attr

    fields = {"server_hostname": attr.ib(default=None)}
    try:  # attrs >= 18.2: the hash is cached, as the key is hashed on every pool lookup
        return attr.make_class("SNIConnectionKey", fields, bases=(base,), slots=True, frozen=True, cache_hash=True)
    except TypeError:
        return attr.make_class("SNIConnectionKey", fields, bases=(base,), slots=True, frozen=True)


def _namedtuple_key_class(base: Any) -> Any:
    """A subclass whose first base is an 8-field namedtuple, so its ``_replace``, ``_make``, ``__repr__``,
    ``__getnewargs__`` and field getters win: ``_replace`` (the proxy tunnel's key) keeps the name, and an
    8-tuple never equals a plain 7-field key.
    """
    fields = collections.namedtuple(  # type: ignore[misc]  # a dynamic namedtuple is the point
        "SNIConnectionKey", (*KEY_FIELDS, "server_hostname"), defaults=(None,), module=__name__
    )
    return type("SNIConnectionKey", (fields, base), {"__slots__": (), "__module__": __name__})


KIND = _kind(ConnectionKey)
_key_class: Any = None


def key_class() -> Any:
    """The key of a TLS request with a ``server_hostname`` override, made on first use (about 2 ms with attrs).

    One class per process, kept at module level: it pickles, and keys made before a ``revert()`` still
    equal those made after the next ``apply()``.
    """
    global _key_class
    if _key_class is None:
        made = (_attrs_key_class if KIND == "attrs" else _namedtuple_key_class)(ConnectionKey)
        made.__module__ = __name__
        made.__qualname__ = made.__name__ = "SNIConnectionKey"
        made.__doc__ = "aiohttp's ConnectionKey plus the server_hostname the connection was verified for."
        _key_class = made
    return _key_class


def __getattr__(name: str) -> Any:
    # ``SNIConnectionKey`` is made on first use; unpickling a key names it before any request did.
    if name == "SNIConnectionKey":
        return key_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _aiohttp_getter() -> Callable[[Any], Any]:
    """aiohttp's own ``connection_key`` getter: refuse (raise) unless its fingerprint is recorded for this release."""
    from aiohttp import __version__
    from packaging.version import Version

    from .._fingerprint import function_fingerprint, recorded
    from .._versions import RELEASE_INDEX

    attribute = vars(ClientRequest).get("connection_key")
    if not isinstance(attribute, property) or attribute.fget is None:
        raise TypeError(f"ClientRequest.connection_key is a {type(attribute).__name__}, not aiohttp's property")
    fingerprint, why = function_fingerprint(attribute)
    release = str(Version(__version__))
    if fingerprint is None or release not in RELEASE_INDEX:
        raise TypeError(f"ClientRequest.connection_key {why or f'of aiohttp {release}: not a release we know'}")
    if not recorded("sni-key", "ClientRequest.connection_key", fingerprint, release):
        raise TypeError(f"ClientRequest.connection_key is not aiohttp {release}'s code (patched by someone else?)")
    return attribute.fget


_original = _aiohttp_getter()
_seven_fields: Callable[[Any], Tuple[Any, ...]] = operator.attrgetter(*KEY_FIELDS)
_tuple_new = tuple.__new__


def _connection_key_attrs(self: ClientRequest, _original: Callable[[Any], Any] = _original) -> Any:
    """aiohttp's key, or (TLS with an override) the same fields plus the name; ``_original`` is a local: fast."""
    key = _original(self)
    server_hostname = self.server_hostname
    if server_hostname is None or not key.is_ssl:
        return key
    return (_key_class or key_class())(*_seven_fields(key), server_hostname)


def _connection_key_namedtuple(self: ClientRequest, _original: Callable[[Any], Any] = _original) -> Any:
    """As ``_connection_key_attrs``; a tuple key is extended without running any ``__new__`` of Python code."""
    key = _original(self)
    server_hostname = self.server_hostname
    if server_hostname is None or not key.is_ssl:
        return key
    return _tuple_new(_key_class or key_class(), (*key, server_hostname))


connection_key_attrs = property(_connection_key_attrs, doc=_original.__doc__)
"""Replaces ``ClientRequest.connection_key`` on 3.9.0 - 3.10.11 (attrs keys)."""
connection_key_namedtuple = property(_connection_key_namedtuple, doc=_original.__doc__)
"""Replaces ``ClientRequest.connection_key`` on 3.11.0 - 3.14.0 (NamedTuple keys)."""
