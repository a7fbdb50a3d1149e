"""Clients, callers and adapters for one process, shared by threads and warm invocations.

Invariants:
- One boto3 client per (service, Region), created once; botocore's own retries are off, so the
  `Caller` of that Region alone decides about retries and rate.
- One `Caller` (and so one rate limit) per Region and budget, whatever the number of threads.
- Another account is reached through its own `Aws` (so its own rate limits: AWS counts them per
  account), whose credentials come from assuming the entry's role with its external id, when
  first used and again before they expire. Its botocore session shares the home session's data
  loader, so the service models are parsed once per process, not once per account, and its
  clients share one client class and one service model per service, one endpoint provider per
  service, its session's event handlers, one HTTP session (connection pool) per endpoint and
  one TLS context per CA bundle (`_SharedClientParts`): each as botocore would build it for the
  client alone. So the sockets the process keeps open grow with the endpoints (services and
  Regions), never with the accounts.
- STS calls (AssumeRole, GetCallerIdentity) have a budget of their own, at `STS_CALLS_PER_SECOND`.
- The clients `Aws` makes share one botocore service model per service (`_ServiceModels`).
- Regions are those of the home Region's partition only (`aws`, `aws-cn`, `aws-us-gov`,
  `aws-eusc`, ...): no other partition can be reached with the same credentials.
- AWS Organizations calls have a budget of their own, at `ORGANIZATIONS_CALLS_PER_SECOND`.
- The clients `Aws` makes build each distinct User-Agent string once (`_CachedUserAgent`), not
  twice per call: what they send is byte for byte what botocore's own clients send.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
import types
import weakref
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import boto3
import botocore.client
import botocore.hooks
import botocore.regions
import botocore.session
from botocore.awsrequest import AWSHTTPConnectionPool, AWSHTTPSConnectionPool
from botocore.config import Config
from botocore.context import get_context
from botocore.credentials import DeferredRefreshableCredentials
from botocore.exceptions import UnknownRegionError
from botocore.httpsession import URLLib3Session, create_urllib3_context, get_cert_path
from botocore.useragent import UserAgentString

from resolver_mesh.aws.calls import Caller, RateLimiter
from resolver_mesh.aws.hubs import HubsTable
from resolver_mesh.aws.organizations import Organization
from resolver_mesh.aws.profiles import ProfilesRegion
from resolver_mesh.aws.resolver import ResolverRegion
from resolver_mesh.aws.shares import RamRegion
from resolver_mesh.config import ConfigError, Settings
from resolver_mesh.desired import TaggedVpcs, VpcRead
from resolver_mesh.models import AccountAccess, InterfaceEndpoint
from resolver_mesh.names import MESH_TAG_KEY, REGION_PATTERN, private_dns_names

# AWS STS throttles per account and Region with a request quota of its own, far above Route 53
# Resolver's 5 calls/s (AWS Security Blog, "How to monitor and query IAM resources at scale -
# Part 2"; re:Post "How do I resolve API throttling or Rate exceeded errors for IAM and AWS
# STS?"). The home account's AssumeRole calls stay well below it.
STS_CALLS_PER_SECOND = 50.0
# AWS Organizations publishes no per-operation request rate (awsdocs/aws-organizations-docs
# issue 39: "I can't find any documentation about the throttling limit for any Organizations
# APIs") and throttles busy organisations with TooManyRequestsException (awslabs/
# aws-deployment-framework issues 781, 788). The walk is serial, one page at a time; this keeps
# it gentle and leaves room for other tools of the organisation.
ORGANIZATIONS_CALLS_PER_SECOND = 4.0
# The connections to one endpoint (a service in a Region), shared by every account's client of
# it (`_SharedClientParts.share_http`): at most `pool_connections()` are open, whatever the
# number of accounts; a call waits for one when all are busy. Lambda allows 1,024 file
# descriptors; `SOCKET_BUDGET` of them are shared out over the endpoints of the mesh's Regions
# (the 4 services read in every Region, and the home Region's STS, DynamoDB, Organizations and
# SQS): from `POOL_CONNECTIONS` (a mesh of the partition's Regions, not known yet) to
# `MAX_POOL_CONNECTIONS` (measured: more in flight than that only adds threads waiting for the
# one process's CPU, `benchmarks/org_benchmark.py`). Whatever Regions the process reads, its
# shared pools never hold more than the budget in all (`_SharedClientParts.share_http`).
POOL_CONNECTIONS = 8
MAX_POOL_CONNECTIONS = 16
SOCKET_BUDGET = 960  # 1,024 less 64 for the runtime, its files and pipes
SERVICES_PER_REGION = 4
HOME_ENDPOINTS = 4
# How long a call waits for one of them: urllib3 would wait forever, so a connection never
# given back (it should not happen) would hang every later call to the endpoint. Past it, the
# call fails (botocore's HTTPClientError: reported, never read as "nothing there").
POOL_WAIT_SECONDS = 120.0
# Taken before any `Aws._lock`, never while holding one (re-entrant: making a client may assume
# a member role, which makes the home account's STS client).
_MAKING_CLIENTS = threading.RLock()
# DescribeVpcs' largest page (its `MaxResults` is 5 to 1,000: EC2 API Reference, DescribeVpcs).
# One page holds every VPC of an account's Region at the default quota (5 per Region) and far
# beyond; a full page is about 0.6 MB of XML, about 4 MiB while botocore parses it.
VPC_PAGE_SIZE = 1000
NOT_OPTED_IN = "not-opted-in"  # ec2 DescribeRegions: an opt-in Region the account has not enabled


_Node = dict[str, Any]  # a node of botocore's handler trie: "chunk", "values", "children"


class _SharedHandlers(botocore.hooks._PrefixTrie):  # type: ignore[misc]
    """The event handlers of one client: a `base` that clients share and never change (the
    session's handlers when the client was made) and the client's own, registered after.

    Searched as one trie, they give exactly what botocore's own copy of the session's handlers,
    with the client's appended, would give: per node, the base's handlers come first in each
    section (first, middle, last), and nodes are visited in botocore's order. Removing a handler
    first gives the client a full copy of its own, as botocore does at creation.
    """

    _root: _Node

    def __init__(self, base: _Node | None = None) -> None:
        super().__init__()
        self._base = base

    def prefix_search(self, key: str) -> tuple[Any, ...]:
        """The handlers of `key`, as a tuple: the emitter keeps it for every event the client
        emits (botocore's deque takes about 600 bytes even when empty)."""
        if self._base is None:
            return tuple(super().prefix_search(key))
        parts = key.split(".")
        collected: deque[Any] = deque()
        nodes: list[tuple[_Node | None, _Node | None, int]] = [(self._base, self._root, 0)]
        while nodes:  # botocore's _get_items, over both tries at once
            base, own, index = nodes.pop()
            handlers = _merged_values(base, own)
            if handlers is not None:
                collected.extendleft(reversed(handlers.first + handlers.middle + handlers.last))
            if index == len(parts):
                continue
            for part in ("*", parts[index]):  # the exact part is searched first
                pair = (_child(base, part), _child(own, part))
                if pair != (None, None):
                    nodes.append((*pair, index + 1))
        return tuple(collected)

    def remove_item(self, key: str, value: Any) -> None:
        if self._base is not None:
            self._root = _merged_node(self._base, self._root)
            self._base = None
        super().remove_item(key, value)

    def __copy__(self) -> _SharedHandlers:
        copied = _SharedHandlers(self._base)
        copied._root = self._recursive_copy(self._root)
        return copied


class _SessionHandlers(botocore.hooks._PrefixTrie):  # type: ignore[misc]
    """The handlers of a member account's session, lent to the clients `Aws` makes as their
    base instead of copied for each. A change after lending gives the session a copy of its
    own first, so a client keeps what it was lent, as it would keep a copy."""

    _root: _Node
    _lent = False

    def lend(self) -> _Node:
        self._lent = True
        return self._root

    def append_item(self, *args: Any, **kwargs: Any) -> None:
        self._keep_lent()
        super().append_item(*args, **kwargs)

    def remove_item(self, *args: Any, **kwargs: Any) -> None:
        self._keep_lent()
        super().remove_item(*args, **kwargs)

    def _keep_lent(self) -> None:
        if self._lent:
            self._root, self._lent = self._recursive_copy(self._root), False


def _child(node: _Node | None, part: str) -> _Node | None:
    return None if node is None else node["children"].get(part)


def _merged_values(base: _Node | None, own: _Node | None) -> Any:
    found = [node["values"] for node in (base, own) if node is not None and node["values"]]
    if len(found) < 2:
        return found[0] if found else None
    first, then = found
    return botocore.hooks.NodeList(
        first.first + then.first, first.middle + then.middle, first.last + then.last
    )


def _merged_node(base: _Node | None, own: _Node | None) -> _Node:
    """A new trie node holding both nodes' handlers (the base's first) and children."""
    values = _merged_values(base, own)
    children = {**(base or {}).get("children", {}), **(own or {}).get("children", {})}
    return {
        "chunk": (base or own or {}).get("chunk"),
        "values": None if values is None else botocore.hooks.NodeList(*map(list, values)),
        "children": {
            part: _merged_node(_child(base, part), _child(own, part)) for part in children
        },
    }


def _handlers_digest(root: _Node) -> bytes:
    """What a trie holds: every node's path and its handlers' identities, in order."""
    digest = hashlib.blake2b(digest_size=16)
    nodes = [("", root)]
    while nodes:
        path, node = nodes.pop()
        values = node["values"]
        held = [list(map(id, section)) for section in values] if values else None
        digest.update(f"{path}={held};".encode())
        nodes.extend((f"{path}.{part}", child) for part, child in node["children"].items())
    return digest.digest()


class _BoundedWaitHTTPPool(AWSHTTPConnectionPool):  # type: ignore[misc]
    """botocore's pool, waiting at most `POOL_WAIT_SECONDS` for a free connection."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        return super()._get_conn(POOL_WAIT_SECONDS if timeout is None else timeout)


class _BoundedWaitHTTPSPool(AWSHTTPSConnectionPool):  # type: ignore[misc]
    """botocore's https pool, waiting at most `POOL_WAIT_SECONDS` for a free connection."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        return super()._get_conn(POOL_WAIT_SECONDS if timeout is None else timeout)


class _CachedUserAgent(UserAgentString):  # type: ignore[misc]
    """A client's user agent builder that builds each distinct User-Agent string once.

    botocore builds the string twice per call (when it serialises the request, and again
    right before signing, for the features registered meanwhile): about a tenth of a call's
    CPU. What it reads changes only with the call's features: the client's (registered when it
    was made) and the call's context's (a paginator, a waiter, a credentials refresh...), in
    the order botocore joins them; the rest (platform, session and client settings) is fixed
    when the client is made. So the string is kept per order of features, and is the one
    botocore builds for it, byte for byte. At most `KEPT` orders per client; beyond them, the
    string is built on every call, as botocore does. Threads of one client may both build a
    string they find missing (the same one). A copy (botocore copies a builder to give it
    other client settings) keeps strings of its own.
    """

    KEPT = 32
    _built: dict[tuple[str, ...], str]

    @classmethod
    def adopt(cls, client: Any) -> None:
        """Make the client's builder one of these (only botocore's own, untouched)."""
        creator: Any = getattr(client, "_user_agent_creator", None)
        if type(creator) is UserAgentString:
            creator._built = {}
            creator.__class__ = cls

    def __copy__(self) -> _CachedUserAgent:
        copied: _CachedUserAgent = type(self).__new__(type(self))
        copied.__dict__.update(self.__dict__)
        copied._built = {}
        return copied

    def to_string(self) -> str:
        context = get_context()
        features = (self._client_features or set()).union(
            () if context is None else context.features
        )
        key = tuple(features)  # botocore's order: it makes the same union
        built = self._built.get(key)
        if built is None:
            built = super().to_string()
            if len(self._built) < self.KEPT:
                self._built[key] = built
        return built


_BOTOCORE_POOLS = {"http": AWSHTTPConnectionPool, "https": AWSHTTPSConnectionPool}
_BOUNDED_POOLS = {"http": _BoundedWaitHTTPPool, "https": _BoundedWaitHTTPSPool}


class _SharedClientParts:
    """One botocore client class and one service model per service (and API version) for the
    clients `Aws` makes, and one copy of each session's event handlers for its clients.

    For every client, botocore builds a new class, with one method and one docstring object
    per operation (about 1 MiB for EC2's ~700 operations), and a `ServiceModel` of its own,
    building the model of every operation to look for endpoint discovery (about 0.3 MiB for
    EC2). The mesh makes a client per (account, service, Region), so at organisation scale
    those were most of the memory per member account. Both depend only on the service's API
    description and on the `creating-client-class` handlers, the same in every session the
    mesh makes, and are read-only once built; so, while `Aws` makes a client (`active()`, in
    this thread only), the first ones built for a service are reused. Other code in the
    process is not affected. Should botocore rename a method, clients get their own as before.

    Every client also gets a copy of its session's event handlers (about 90 KiB: some 140
    handlers in 200 trie nodes), to which it adds a few of its own. The clients `Aws` makes
    share their session's instead (`_SharedHandlers`) and keep only their own additions: a
    member account's session lends them its own (`_SessionHandlers`); of another session, they
    share one copy, taken again whenever its handlers change (`_handlers_digest`).

    Each client also parses its service's endpoint rules into an `EndpointProvider` of its own
    (about 5 KiB); the provider is a pure function of a call's parameters (its cache is keyed by
    them), so the clients `Aws` makes share one per service's rules.

    And every client gets an HTTP session of its own, whose pool keeps its connections open
    after a call: a socket (file descriptor) per (account, service, Region) client, 24 per
    member account at 6 hub Regions, where Lambda allows 1,024 file descriptors in all; and a
    TLS handshake per client. The clients `Aws` makes share one session per endpoint (service
    and Region) and connection settings, whatever their account (`share_http`); and one TLS
    context per CA bundle, into which the bundle is loaded once (botocore loads it into a
    context of the client's own on each new connection: about 680 KiB and 17 ms of CPU for
    certifi's bundle).

    Each session and each client also registers its handlers one by one (some 180 per member
    account), and botocore checks each one with `inspect.getfullargspec` and works out each
    event's aliased name again in every new emitter: about a third of the CPU of making a member
    account's session and clients. While active, a plain function (or a method of one) is
    checked from its code's flags, exactly what `getfullargspec` reads there; any other callable
    goes to botocore's check. And every emitter with botocore's own aliases shares one cache of
    aliased names (a pure function of the name and the aliases).
    """

    def __init__(self) -> None:
        self._parts: dict[tuple[str, str, str | None], Any] = {}
        self._local = threading.local()
        self._share("_create_client_class", lambda name, model: (name, str(model.api_version)))
        self._share("_load_service_model", lambda name, api_version=None: (name, api_version))
        self._handlers: weakref.WeakKeyDictionary[Any, tuple[bytes, _Node]] = (
            weakref.WeakKeyDictionary()
        )
        self._share_handlers()
        self._share_endpoint_providers()
        self._share_handler_checks()
        self._share_alias_names()
        self._tls: dict[str, Any] = {}  # CA bundle -> its one TLS context
        # endpoint, settings -> the session its clients share, for as long as one of them lives
        self._http: weakref.WeakValueDictionary[tuple[Any, ...], URLLib3Session] = (
            weakref.WeakValueDictionary()
        )
        self._sockets = 0  # what the live shared sessions may hold open, in all (`share_http`)
        self._sockets_lock = threading.Lock()  # a session's share comes back from any thread

    def _share_handlers(self) -> None:
        trie = botocore.hooks._PrefixTrie
        plain_copy = trie.__copy__

        def shared_copy(session_handlers: Any) -> Any:
            if not getattr(self._local, "active", False):
                return plain_copy(session_handlers)
            if isinstance(session_handlers, _SessionHandlers):  # a member account's session
                return _SharedHandlers(session_handlers.lend())
            if type(session_handlers) is not trie:
                return plain_copy(session_handlers)
            held = _handlers_digest(session_handlers._root)  # callers hold _MAKING_CLIENTS
            digest, base = self._handlers.get(session_handlers, (b"", None))
            if base is None or digest != held:
                base = session_handlers._recursive_copy(session_handlers._root)
                self._handlers[session_handlers] = (held, base)
            return _SharedHandlers(base)

        trie.__copy__ = shared_copy

    def _share(self, method: str, key_of: Callable[..., tuple[str, str | None]]) -> None:
        build = getattr(botocore.client.ClientCreator, method, None)
        if build is None:
            return

        def shared(creator: Any, *args: Any, **kwargs: Any) -> Any:
            if not getattr(self._local, "active", False):
                return build(creator, *args, **kwargs)
            key = (method, *key_of(*args, **kwargs))
            found = self._parts.get(key)  # callers hold _MAKING_CLIENTS
            if found is None:
                found = self._parts[key] = build(creator, *args, **kwargs)
            return found

        setattr(botocore.client.ClientCreator, method, shared)

    def _share_endpoint_providers(self) -> None:
        provider = getattr(botocore.regions, "EndpointProvider", None)
        if provider is None:
            return
        made: dict[tuple[int, int], tuple[Any, Any, Any]] = {}  # with the data: ids stay theirs

        def shared_provider(ruleset_data: Any, partition_data: Any) -> Any:
            if not getattr(self._local, "active", False):
                return provider(ruleset_data=ruleset_data, partition_data=partition_data)
            key = (id(ruleset_data), id(partition_data))
            found = made.get(key)  # callers hold _MAKING_CLIENTS
            if found is None:
                built = provider(ruleset_data=ruleset_data, partition_data=partition_data)
                found = made[key] = (ruleset_data, partition_data, built)
            return found[2]

        botocore.regions.EndpointProvider = shared_provider

    def _share_handler_checks(self) -> None:
        hooks = botocore.hooks.BaseEventHooks
        check = hooks._verify_accept_kwargs

        def quick_check(emitter: Any, func: Any) -> Any:
            if getattr(self._local, "active", False):
                accepts = _accepts_kwargs(func)
                if accepts is not None:
                    if not accepts:
                        raise ValueError(
                            f"Event handler {func} must accept keyword arguments (**kwargs)"
                        )
                    return None
            return check(emitter, func)

        hooks._verify_accept_kwargs = quick_check

    def _share_alias_names(self) -> None:
        aliaser = botocore.hooks.EventAliaser
        init = aliaser.__init__
        aliases = botocore.hooks.EVENT_ALIASES
        names: dict[str, str] = {}  # event name -> its aliased name, under botocore's aliases

        def shared_init(made: Any, event_emitter: Any, event_aliases: Any = None) -> None:
            init(made, event_emitter, event_aliases)
            if getattr(self._local, "active", False) and made._event_aliases == aliases:
                made._alias_name_cache = names

        aliaser.__init__ = shared_init

    def share_http(self, client: Any) -> None:
        """Give the client the process's one HTTP session for its endpoint (service and Region)
        and connection settings, whatever its account; the first such client's becomes it.

        A connection carries no credentials (every request is signed on its own), so one pool
        per endpoint serves every account, with at most `max_pool_connections` sockets open (a
        call waits for a free one, at most `POOL_WAIT_SECONDS`). The live sessions' pools come
        out of one budget, `SOCKET_BUDGET`: an endpoint gets what remains of it when that is
        less (at least one connection), whatever Regions the process turns out to read; a
        session gives its share back once no client holds it. A client that connects through a
        proxy keeps its own session."""
        endpoint = getattr(client, "_endpoint", None)
        http = getattr(endpoint, "http_session", None)
        proxies = getattr(getattr(http, "_proxy_config", None), "_proxies", None)
        if endpoint is None or not isinstance(http, URLLib3Session) or proxies:
            return
        key = (
            client.meta.service_model.service_name,
            client.meta.region_name,
            endpoint.host,
            repr(http._verify),
            repr(http._timeout),
            http._max_pool_connections,
            repr(http._socket_options),
            repr((http._cert_file, http._key_file)),
        )
        shared = self._http.get(key)  # callers hold _MAKING_CLIENTS
        if shared is None:
            manager: Any = getattr(http, "_manager", None)
            pools = getattr(manager, "connection_pool_kw", None)
            classes = getattr(manager, "pool_classes_by_scheme", None)
            if not isinstance(pools, dict) or classes != _BOTOCORE_POOLS:
                return  # not the urllib3 botocore is known with: botocore's own way
            pools["block"] = True  # at most `maxsize` open: a call waits for one ...
            manager.pool_classes_by_scheme = _BOUNDED_POOLS  # ... for `POOL_WAIT_SECONDS`
            with self._sockets_lock:
                size = min(http._max_pool_connections, max(1, SOCKET_BUDGET - self._sockets))
                self._sockets += size
            pools["maxsize"] = http._max_pool_connections = size
            weakref.finalize(http, self._give_back, size)  # its clients gone, its sockets too
            self._share_tls(http)
            self._http[key] = http
        elif shared is not http:
            endpoint.http_session = shared
            http.close()  # never used: no connection to close

    def _give_back(self, size: int) -> None:
        with self._sockets_lock:
            self._sockets -= size

    def _share_tls(self, http: URLLib3Session) -> None:
        """Verify the session's https connections with the process's one TLS context for its
        CA bundle, into which the bundle was loaded once. Verification is unchanged: the same
        bundle, the same checks (urllib3 sets them on the context for every connection). A
        session that does not verify keeps botocore's way."""
        verify = http._verify
        pools = getattr(getattr(http, "_manager", None), "connection_pool_kw", None)
        if not verify or not isinstance(pools, dict):
            return
        bundle = get_cert_path(verify)
        context = self._tls.get(bundle)
        if context is None:
            context = create_urllib3_context()
            context.load_verify_locations(bundle)
            self._tls[bundle] = context
        pools["ssl_context"] = context
        set_up = http._setup_ssl_cert

        def setup_ssl_cert(pool: Any, url: str, verify: Any) -> None:
            # Set on the pool before every request, and read by any thread that opens a
            # connection: never the bundle where the context holds it already.
            shared = pool.conn_kw.get("ssl_context") is context
            if (
                shared
                and verify
                and url.lower().startswith("https")
                and (get_cert_path(verify) == bundle)
            ):
                pool.cert_reqs, pool.ca_certs = "CERT_REQUIRED", None
            else:
                set_up(pool, url, verify)

        http._setup_ssl_cert = setup_ssl_cert

    @contextmanager
    def active(self) -> Iterator[None]:
        """Clients made in this block (in this thread) share their service's class and model."""
        was = getattr(self._local, "active", False)
        self._local.active = True
        try:
            yield
        finally:
            self._local.active = was


def _almost_mesh_tag(tags: Iterable[Mapping[str, Any]], mesh_id: str) -> str:
    """A tag that is `MESH_TAG_KEY` = `mesh_id` but for case or surrounding spaces, as
    "key=value" ("" when none): AWS compares tags exactly, and so does the mesh, but a
    near miss is most likely meant to join."""

    def loose(text: object) -> str:
        return str(text).strip().casefold()

    for tag in tags:
        key, value = tag.get("Key"), tag.get("Value")
        if loose(key) == loose(MESH_TAG_KEY) and loose(value) == loose(mesh_id):
            return f"{key}={value}"
    return ""


def pool_connections(mesh_regions: int) -> int:
    """The connections kept per endpoint for a mesh of `mesh_regions` Regions (0: the
    partition's enabled Regions, not known yet): `SOCKET_BUDGET` over the endpoints they may
    use, from `POOL_CONNECTIONS` to `MAX_POOL_CONNECTIONS`."""
    if mesh_regions <= 0:
        return POOL_CONNECTIONS
    endpoints = mesh_regions * SERVICES_PER_REGION + HOME_ENDPOINTS
    return max(POOL_CONNECTIONS, min(MAX_POOL_CONNECTIONS, SOCKET_BUDGET // endpoints))


def _accepts_kwargs(func: Any) -> bool | None:
    """Whether a plain function (or a method of one) takes `**kwargs`, as
    `inspect.getfullargspec` finds it; None for any other callable, or a function with
    attributes of its own (`__signature__`, `_partialmethod`, ...), which inspect may read
    instead of the code."""
    target = func.__func__ if type(func) is types.MethodType else func
    if type(target) is not types.FunctionType or target.__dict__:
        return None
    return bool(target.__code__.co_flags & inspect.CO_VARKEYWORDS)


_SHARED_CLIENT_PARTS = _SharedClientParts()


class Aws:
    """Everything that talks to AWS, built lazily and cached."""

    def __init__(self, settings: Settings, session: boto3.session.Session | None = None) -> None:
        self.settings = settings
        self.session = session or boto3.session.Session()
        home = settings.home_region or self.session.region_name
        if not home:
            raise ConfigError("no home Region: set HOME_REGION or AWS_REGION (or --home-region)")
        self.home_region: str = home
        self._config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=min(5.0, settings.call_timeout_seconds),
            read_timeout=settings.call_timeout_seconds,
            max_pool_connections=pool_connections(len(settings.mesh_regions)),
        )
        self._clients: dict[tuple[str, str], Any] = {}
        self._callers: dict[str, Caller] = {}
        self._partition: str | None = None
        self._known_regions: frozenset[str] | None = None
        self._asked_account_regions = False
        self._account_id: str | None = None
        self._members: dict[str, Aws] = {}
        self.access: AccountAccess | None = None  # how a member account's `Aws` was reached
        self._lock = threading.Lock()

    def client(self, service: str, region: str) -> Any:
        key = (service, region)
        with self._lock:
            found = self._clients.get(key)
        if found is None:
            # One client at a time in the process: the first of a service parses its model
            # into the shared loader, and a second thread would parse it again meanwhile.
            with _MAKING_CLIENTS, self._lock, _SHARED_CLIENT_PARTS.active():
                found = self._clients.get(key)
                if found is None:
                    found = self.session.client(service, region_name=region, config=self._config)
                    _SHARED_CLIENT_PARTS.share_http(found)
                    _CachedUserAgent.adopt(found)
                    self._clients[key] = found
        return found

    def caller(self, region: str, budget: str = "route53resolver") -> Caller:
        """The caller of a Region's rate budget: the Resolver API's by default; the hubs table
        has a budget of its own, so that reading it takes nothing from the Resolver's."""
        with self._lock:
            key = f"{budget}:{region}"
            if key not in self._callers:
                rate = {
                    "sts": STS_CALLS_PER_SECOND,
                    "organizations": ORGANIZATIONS_CALLS_PER_SECOND,
                }.get(budget, self.settings.calls_per_second)
                limiter = RateLimiter(rate)
                self._callers[key] = Caller(limiter, self.settings.max_attempts)
            return self._callers[key]

    def resolver(self, region: str) -> ResolverRegion:
        return ResolverRegion(region, self.client("route53resolver", region), self.caller(region))

    def profiles(self, region: str) -> ProfilesRegion:
        """Route 53 Profiles of the Region, under the Region's Resolver budget."""
        return ProfilesRegion(region, self.client("route53profiles", region), self.caller(region))

    def ram(self, region: str) -> RamRegion:
        return RamRegion(region, self.client("ram", region), self.caller(region, "ram"))

    def account_id(self) -> str:
        """This session's account id (one STS call per process)."""
        if self._account_id is None:
            sts = self.client("sts", self.home_region)
            identity = self.caller(self.home_region, "sts")(sts.get_caller_identity)
            self._account_id = str(identity["Account"])
        return self._account_id

    def member(self, access: AccountAccess) -> Aws:
        """The `Aws` of another account, reached by assuming `access.role_arn`."""
        reach = _reach(access)
        with self._lock:
            found = self._members.get(access.account)
        if found is not None and found.access is not None and _reach(found.access) == reach:
            return found
        made = Aws(self.settings, self._assumed_session(access))
        made.access = access
        made._account_id = access.account
        with self._lock:  # a thread that made one first wins
            found = self._members.get(access.account)
            if found is None or found.access is None or _reach(found.access) != reach:
                self._members[access.account] = found = made
            return found

    def _assumed_session(self, access: AccountAccess) -> boto3.session.Session:
        sts = self.client("sts", self.home_region)
        caller = self.caller(self.home_region, "sts")
        arguments = {
            "RoleArn": access.role_arn,
            "RoleSessionName": f"resolver-mesh-{self.settings.mesh_id}",
        }
        if access.external_id:
            arguments["ExternalId"] = access.external_id

        def assume() -> dict[str, str]:
            credentials = caller(sts.assume_role, **arguments)["Credentials"]
            return {
                "access_key": credentials["AccessKeyId"],
                "secret_key": credentials["SecretAccessKey"],
                "token": credentials["SessionToken"],
                "expiry_time": credentials["Expiration"].isoformat(),
            }

        emitter = botocore.hooks.HierarchicalEmitter()
        emitter._handlers = _SessionHandlers()  # lent to this account's clients, not copied
        # Its some 130 handlers checked quickly (`active`); a session reaches none of the parts
        # that need `_MAKING_CLIENTS`.
        with _SHARED_CLIENT_PARTS.active():
            core = botocore.session.Session(event_hooks=emitter)
            # The parsed service models, endpoint rules and partitions are the bulk of a
            # session's memory (10-20 MiB): one loader for every account; credentials stay the
            # account's own.
            loader = self.session._session.get_component("data_loader")
            core.register_component("data_loader", loader)
            core._credentials = DeferredRefreshableCredentials(assume, "assume-role")
            return boto3.session.Session(botocore_session=core, region_name=self.home_region)

    def organization(self) -> Organization:
        """AWS Organizations (a global service: its endpoint is chosen by the home Region's
        partition), with a budget of its own."""
        home = self.home_region
        return Organization(self.client("organizations", home), self.caller(home, "organizations"))

    def organization_members(
        self, found: Callable[[dict[str, AccountAccess]], None] | None = None
    ) -> dict[str, AccountAccess]:
        """The ACTIVE accounts under `MEMBER_OUS` other than this session's own, each with the
        member role (none without `MEMBER_OUS`); each page's are also given to `found` as soon
        as it is read. Raises when the organisation cannot be read: an unread member list must
        never read as "no members" (nor may what `found` was given before the error)."""
        ous = self.settings.member_ous
        if not ous:
            return {}

        def members(accounts: frozenset[str]) -> dict[str, AccountAccess]:
            own = self.account_id()  # read once there is an account to tell it from
            return {account: self.member_access(account) for account in sorted(accounts - {own})}

        def page(accounts: frozenset[str]) -> None:
            if found is not None and (listed := members(accounts)):
                found(listed)

        every = self.organization().active_accounts(ous, page)
        return members(every) if every else {}

    def member_roles(self) -> dict[str, AccountAccess]:
        """`MEMBER_ROLES` by account, less this session's own account (the home account, read
        without a role: naming it there must not make it a member of itself). Its id is read
        (once per process) only when `MEMBER_ROLES` names any account."""
        roles = {access.account: access for access in self.settings.member_roles}
        if roles:
            roles.pop(self.account_id(), None)
        return roles

    def member_access(self, account: str) -> AccountAccess:
        """How an account of `MEMBER_OUS` is reached: the member role member.yaml creates, with
        `MEMBER_EXTERNAL_ID`."""
        role = f"arn:{self.partition}:iam::{account}:role/{self.settings.member_role_name}"
        fields = {"account_id": account, "role_arn": role}
        if external := self.settings.member_external_id:
            fields["external_id"] = external
        return AccountAccess.model_validate(fields)

    def hubs_table(self) -> HubsTable:
        home = self.home_region
        return HubsTable(
            self.settings.table_name, self.client("dynamodb", home), self.caller(home, "dynamodb")
        )

    def interface_endpoints(self, region: str, vpc_id: str) -> tuple[InterfaceEndpoint, ...]:
        """The live interface VPC endpoints of one VPC (DescribeVpcEndpoints, every page), each
        with its AWS service's private DNS names (`service_dns_names`)."""
        ec2 = self.client("ec2", region)
        raw = self.caller(region).pages(
            ec2.describe_vpc_endpoints,
            "VpcEndpoints",
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}],
        )
        found = tuple(
            InterfaceEndpoint(
                id=str(endpoint["VpcEndpointId"]),
                vpc_id=str(endpoint.get("VpcId", vpc_id)),
                service_name=str(endpoint.get("ServiceName", "")),
                private_dns=bool(endpoint.get("PrivateDnsEnabled")),
                state=str(endpoint.get("State", "")),
                service_region=endpoint.get("ServiceRegion"),
            )
            for endpoint in raw
            if endpoint.get("VpcEndpointType") == "Interface"
            and str(endpoint.get("State", "")).lower() not in ("deleted", "deleting", "failed")
        )
        return self.service_dns_names(region, found)

    def service_dns_names(
        self, region: str, endpoints: tuple[InterfaceEndpoint, ...]
    ) -> tuple[InterfaceEndpoint, ...]:
        """The endpoints with the private DNS names of their AWS services: one paginated
        DescribeVpcEndpointServices (`ServiceNames`; `ServiceRegions` for cross-Region
        endpoints) per service Region. A service whose names cannot be read gets
        `names_unread` (the error), never a guess."""
        ec2 = self.client("ec2", region)
        wanted: dict[str, set[str]] = {}  # service Region ("" = this one) -> service names
        for endpoint in endpoints:
            if endpoint.is_aws_service:
                wanted.setdefault(endpoint.service_region or "", set()).add(endpoint.service_name)
        names: dict[tuple[str, str], tuple[str, ...]] = {}
        unread: dict[str, str] = {}
        for service_region, services in sorted(wanted.items()):
            where: dict[str, Any] = {"ServiceRegions": [service_region]} if service_region else {}
            try:
                details = list(
                    self.caller(region).pages(
                        ec2.describe_vpc_endpoint_services,
                        "ServiceDetails",
                        ServiceNames=sorted(services),
                        **where,
                    )
                )
            except Exception as error:
                unread[service_region] = f"{type(error).__name__}: {error}"
                continue
            for detail in details:
                types = {t.get("ServiceType") for t in detail.get("ServiceType", [])}
                if "Interface" in types:  # S3 has a Gateway service of the same name
                    listed = [detail.get("PrivateDnsName") or ""]
                    listed += [
                        d.get("PrivateDnsName") or "" for d in detail.get("PrivateDnsNames", [])
                    ]
                    key = (service_region, str(detail.get("ServiceName")))
                    names[key] = private_dns_names(n for n in listed if n)
        result = []
        for endpoint in endpoints:
            key = (endpoint.service_region or "", endpoint.service_name)
            if not endpoint.is_aws_service:
                result.append(endpoint)
            elif key in names:
                result.append(replace(endpoint, dns_names=names[key]))
            else:
                why = unread.get(key[0], "DescribeVpcEndpointServices does not describe it")
                result.append(replace(endpoint, names_unread=why))
        return tuple(result)

    def existing_vpcs(self, region: str, vpc_ids: Collection[str]) -> frozenset[str]:
        """Which of `vpc_ids` exist in this account's Region (DescribeVpcs, every page; a
        `vpc-id` filter lists the ones that exist instead of failing on the first missing)."""
        if not vpc_ids:
            return frozenset()
        ec2 = self.client("ec2", region)
        raw = self.caller(region).pages(  # the Region's one budget, as every read of it
            ec2.describe_vpcs, "Vpcs", Filters=[{"Name": "vpc-id", "Values": sorted(vpc_ids)}]
        )
        return frozenset(str(vpc["VpcId"]) for vpc in raw)

    def tagged_vpcs(self, region: str, mesh_id: str) -> TaggedVpcs:
        """The VPCs this account sees in `region` tagged `MESH_TAG_KEY` = `mesh_id` (`vpcs`)."""
        return self.vpcs(region, mesh_id).tagged

    def vpcs(self, region: str, mesh_id: str, named: Collection[str] = ()) -> VpcRead:
        """Every VPC this account sees in `region` (its own and those shared with it through
        VPC sharing): one DescribeVpcs without a filter, every page of `VPC_PAGE_SIZE`, on the
        Region's one budget, for two answers: the VPCs tagged `MESH_TAG_KEY` = `mesh_id` (the
        tags the account sees, compared exactly), split by owner (a VPC shared with this
        account is another account's), and which of `named` exist, as `existing_vpcs` would
        say. Only those ids are kept, whatever the number of VPCs. Errors propagate: an unread
        tag is never read as "no tag", an unread VPC never as "missing"."""
        ec2 = self.client("ec2", region)
        wanted = frozenset(named)
        owners: dict[str, str] = {}  # tagged VPC -> its owner ("": this account)
        near: dict[str, tuple[str, str]] = {}  # almost tagged VPC -> (its owner, its tag)
        found: set[str] = set()
        for vpc in self.caller(region).pages(ec2.describe_vpcs, "Vpcs", MaxResults=VPC_PAGE_SIZE):
            vpc_id = str(vpc["VpcId"])
            if vpc_id in wanted:
                found.add(vpc_id)
            tags = vpc.get("Tags") or ()
            owner = str(vpc.get("OwnerId") or "")
            if any(t.get("Key") == MESH_TAG_KEY and t.get("Value") == mesh_id for t in tags):
                owners[vpc_id] = owner
            elif tag := _almost_mesh_tag(tags, mesh_id):
                near[vpc_id] = (owner, tag)
        me = self.account_id() if any(owners.values()) else ""  # a member's is known
        if any(owner for owner, _ in near.values()) and not me:
            try:
                me = self.account_id()
            except Exception:  # near misses are only reported: never fail the read for them
                near = {}
        foreign = {vpc: owner for vpc, owner in owners.items() if owner not in ("", me)}
        owned = frozenset(owners) - set(foreign)
        mistagged = {vpc: tag for vpc, (owner, tag) in near.items() if owner in ("", me)}
        return VpcRead(TaggedVpcs(owned, foreign, mistagged=mistagged), frozenset(found))

    @property
    def partition(self) -> str:
        """The home Region's partition, from botocore's partition table, whose Region patterns
        also match Regions newer than its lists (no call)."""
        if self._partition is None:
            try:
                self._partition = self.session.get_partition_for_region(self.home_region)
            except UnknownRegionError:
                raise ConfigError(
                    f"the home Region {self.home_region!r} is in no AWS partition botocore knows"
                ) from None
        return self._partition

    def in_partition(self, region: str) -> bool:
        """Whether `region` has the name of a Region of the home partition (no call)."""
        try:
            return bool(self.session.get_partition_for_region(region) == self.partition)
        except UnknownRegionError:
            return False

    def known_regions(self, names: Iterable[str] = ()) -> frozenset[str]:
        """The Regions of the home partition: those botocore lists Route 53 Resolver in, and,
        once one of `names` has a Region's shape but is not among them, every Region the
        account reports (ec2 DescribeRegions with AllRegions, once per process), so that a
        Region newer than botocore is known as soon as AWS lists it. No call otherwise."""
        if self._known_regions is None:
            listed = self.session.get_available_regions("route53resolver", self.partition)
            self._known_regions = frozenset(listed)
        unlisted = {n for n in names if REGION_PATTERN.match(n)} - self._known_regions
        if unlisted and not self._asked_account_regions:
            self._known_regions |= self._account_regions(all_regions=True)
            self._asked_account_regions = True
        return self._known_regions

    def enabled_regions(self) -> list[str]:
        """The account's enabled Regions of the home partition, for the full-resync sweep."""
        return sorted(self._account_regions(all_regions=False))

    def regions_not_enabled(self) -> frozenset[str]:
        """The opt-in Regions the account has not enabled (ec2 DescribeRegions with AllRegions,
        in the home Region: those whose OptInStatus is not-opted-in). AWS refuses every call
        there, so nothing of the mesh can be read or changed there."""
        ec2 = self.client("ec2", self.home_region)
        listed = self.caller(self.home_region)(ec2.describe_regions, AllRegions=True)
        return frozenset(
            str(r["RegionName"]) for r in listed["Regions"] if r.get("OptInStatus") == NOT_OPTED_IN
        )

    def _account_regions(self, all_regions: bool) -> frozenset[str]:
        """The Regions ec2 DescribeRegions lists, those of the home partition only (AWS lists
        only its own partition's; the local emulator lists every partition's)."""
        ec2 = self.client("ec2", self.home_region)
        listed = self.caller(self.home_region)(ec2.describe_regions, AllRegions=all_regions)
        names = (str(r["RegionName"]) for r in listed["Regions"])
        return frozenset(name for name in names if self.in_partition(name))

    def check_settings_regions(self) -> None:
        """A `ConfigError` naming the setting and the Region when a Region setting names one
        that is not a known Region of the home partition, or excludes the home Region."""
        for setting, regions in self.settings.region_settings().items():
            unknown = sorted(set(regions) - self.known_regions(regions))
            if unknown:
                raise ConfigError(
                    f"{setting}: {', '.join(unknown)}: not a known Region of the"
                    f" {self.partition} partition (home Region {self.home_region})"
                )
        if self.home_region in self.settings.excluded_regions:
            raise ConfigError(
                f"EXCLUDED_REGIONS (--excluded-regions): {self.home_region} is the home Region"
                " (the hubs table's): it cannot be excluded"
            )

    def call_counts(self) -> Counter[str]:
        total: Counter[str] = Counter()
        with self._lock:
            for caller in self._callers.values():
                total.update(caller.counts)
            members = list(self._members.values())
        for member in members:
            total.update(member.call_counts())
        return total


def _reach(access: AccountAccess) -> tuple[str, str | None, str | None]:
    """What makes two entries reach an account the same way."""
    return access.account, access.role_arn, access.external_id
