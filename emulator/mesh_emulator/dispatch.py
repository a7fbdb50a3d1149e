"""moto's request dispatch without the work it repeats on every request (moto 5.2.5).

A profile of the emulator serving Route 53 Resolver and EC2 reads found two thirds of its own
time outside the services, in two lookups whose answers never change while it runs:

- `moto.backends.list_of_moto_modules` lists moto's package directory (`os.listdir`, then
  `os.path.isdir` for each of some 170 entries) for every request, to check whether the host
  names a service (`DomainDispatcherApplication.get_backend_for_host`, twice per request):
  about a quarter of the server's time. The installed package does not change while the
  process runs, so the list is made once.
- `moto.core.responses.method_names_from_class` walks the response class with
  `inspect.getmembers` (every attribute, sorted) only for `call_action` to ask whether one
  action name is among them: about a seventh of the server's time. The same question is
  answered for that one name with `getattr` (`_FunctionNames`), which is what `getmembers`
  does for each name; so a method patched in later is still found, and the answers are the
  same.

And one lookup whose answer is made once, but by every request that asks before it is made:
- `moto.core.utils.get_service_model` and `moto.core.routing.get_service_router` are cached
  (`functools.cache`) without a lock, and making one lists botocore's data directory (some 600
  directories and 3,900 files). The first requests to a service made at once (a reconcile's
  first reads of RAM, one per location) each made it again, side by side: 3 to 5 s each with
  60 of them. Now the first one makes it and the others wait for it (`_made_once`).

Three more, found by `benchmarks/emulator_costs.py` (the emulator's CPU per call):
- `moto.iam.models.get_account_id_from`, which names the account of the request's access key
  for every request, scans every account's IAM backends (in every partition) until one holds
  the key: a cost growing with the accounts (74 lookups per request at 20 member accounts).
  Now the account found for a key is remembered, and asked again first (`_AccountsOfKeys`):
  while it still holds the key, it is the answer; otherwise (the key was deleted, the
  backends reset) moto's scan answers, as before. An access key belongs to one account
  (moto makes them at random), so the answers are the same. A key found nowhere (the home
  account's test credentials, on every request they sign) is answered as moto answered it
  (its default account) until moto adds another access key to an account (counted once
  `IAMBackend.create_access_key` or `create_temp_access_key`, the only two that add one, has
  added it), which alone could make the scan find it.
- `moto.core.base_backend.BackendDict.__getitem__`, the service backends of an account, asked
  several times per request, lists every account's id (`list(self.keys())`) under moto's one
  backend lock to check whether to make the account's backends, even when they exist: a cost
  and a wait growing with the accounts. An account whose backends exist is answered from the
  dict, without the list or the lock, while the dict is among those that a reset clears
  (moto's lookup enters it there, moto's reset empties that list); any other goes to moto,
  which makes the backends and enters the dict as before. A request made during a reset no
  longer waits for it (the emulator resets only between tests, with no request in flight).
- `DomainDispatcherApplication.get_backend_for_host` matches the host it infers
  (`route53resolver.us-east-1.amazonaws.com`) against some 180 regular expressions in turn
  (80 µs for Route 53 Resolver) for every request. The answer depends only on the host and
  on the patterns, which extensions only add to (`route53profiles`): it is remembered per
  host while the patterns stay as they are (`_BackendsOfHosts`). A host no pattern matches is
  asked again every time, as before (moto prints a line for it).

And one drawn for every answer: its request id (`x-amzn-requestid`, and the `RequestId` of
an XML body), 52 letters and digits from `MotoRandom.get_random_string`, one `Random.choice`
each (three Python calls per character: `choice`, `_randbelow`, `getrandbits`).
`_random_strings` makes the same draws (`getrandbits` of as many bits, again while the
number is out of the pool, as `choice` makes them) without the calls: the same strings from
the same state of the generator, so that a seeded emulator (`/moto-api/seed`) still answers
the same ids, of its resources as of its requests. A generator whose `choice` or
`_randbelow` is not `Random`'s is left to moto.

Then `BaseResponse._enrich_response` puts that id into the body's `<RequestId>`, for every
answer, with `re.sub` of the pattern `(?<=<RequestId>).*(?=</RequestId>)`: a pattern that
begins with a lookbehind gives the regular expression engine no prefix to look for, so it
is tried at every character of the body (20 to 30 us for a list of a few kB). It can match
only where the body holds `<RequestId>` (most answers, JSON or EC2's `<requestId>`, do not):
`_Re` stands for the `re` module in `moto.core.responses` (`_enrich_response` is its only
use of `re` while serving) and answers that `sub` (without flags, as moto calls it) with the
body itself when the body is a `str` without `<RequestId>`; any other call is `re.sub`'s.

`install_dispatch_speedups` patches them, once per process; it changes no answer of any API.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

_lock = threading.Lock()
_installed = False
_moto: dict[str, Any] = {}  # moto's own functions, replaced (the tests compare with them)


class _FunctionNames:
    """The names of a class's functions, as `inspect.getmembers(cls, inspect.isfunction)`
    gives them, answering only `in`: a name is in it when `getattr(cls, name)` is a
    function."""

    __slots__ = ("_owner",)

    def __init__(self, owner: type) -> None:
        self._owner = owner

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and inspect.isfunction(getattr(self._owner, name, None))


def _function_names(owner: Any) -> _FunctionNames:
    return _FunctionNames(owner)


def _made_once(make: Callable[[str], Any]) -> Callable[[str], Any]:
    """`make(name)` made once per name, whatever the number of threads asking at once."""
    lock = threading.Lock()
    made: dict[str, Any] = {}

    def once(name: str) -> Any:
        found = made.get(name)
        if found is None:
            with lock:
                found = made.get(name)
                if found is None:
                    found = made[name] = make(name)
        return found

    return once


class _AccountsOfKeys:
    """moto's `get_account_id_from(access_key)`, asking first the account where the key was
    found last time (see the module's docstring), and remembering a key found nowhere until
    moto adds another access key (`key_made`). Thread-safe: dicts set atomically, and the
    count of keys added read before a scan (a key added during it leaves its answer stale)."""

    def __init__(self, scan: Callable[[str], str]) -> None:
        from moto.core.models import DEFAULT_ACCOUNT_ID

        self._scan = scan
        self._default = DEFAULT_ACCOUNT_ID  # moto's answer for a key found nowhere
        self._found: dict[str, str] = {}
        self._unknown: dict[str, tuple[int, str]] = {}  # key -> (keys made, moto's answer)
        self._keys_made = 0
        self._lock = threading.Lock()

    def key_made(self) -> None:
        """moto added an access key to an account: a key found nowhere may now be found."""
        with self._lock:
            self._keys_made += 1

    @staticmethod
    def _holds(account_id: str, access_key: str) -> bool:
        """Whether the IAM backends of `account_id` hold `access_key` (nothing is created:
        moto's lookups by item would make the backends they miss)."""
        from moto.iam.models import iam_backends

        account = dict.get(iam_backends, account_id)
        if account is None:
            return False
        return any(access_key in backend.access_keys for backend in dict.values(account))

    def __call__(self, access_key: str) -> str:
        account_id = self._found.get(access_key)
        if account_id is not None and self._holds(account_id, access_key):
            return account_id
        made = self._keys_made
        unknown = self._unknown.get(access_key)
        if unknown is not None and unknown[0] == made:
            return unknown[1]
        account_id = self._scan(access_key)
        if self._holds(account_id, access_key):  # not the default answer for an unknown key
            self._found[access_key] = account_id
        elif account_id == self._default:  # not a key deleted during the scan
            self._unknown[access_key] = (made, account_id)
        return account_id


class _BackendsOfHosts:
    """`get_backend_for_host`, remembered per host while the patterns it matches stay the
    same list of the same length (extensions insert theirs at install)."""

    def __init__(self, lookup: Callable[[Any, str | None], Any]) -> None:
        self._lookup = lookup
        self._found: dict[str, Any] = {}
        self._patterns: tuple[int, int] = (0, -1)
        self._lock = threading.Lock()

    def __call__(self, dispatcher: Any, host: str | None) -> Any:
        patterns = dispatcher.backend_url_patterns
        version = (id(patterns), len(patterns))
        with self._lock:
            if version != self._patterns:
                self._found, self._patterns = {}, version
            found = self._found
        if host is not None and host in found:
            return found[host]
        backend = self._lookup(dispatcher, host)
        if host is not None and backend is not None:
            found[host] = backend
        return backend


def _count_keys_made(iam_backend: type, accounts_of_keys: _AccountsOfKeys) -> None:
    """Tell `accounts_of_keys` of every access key moto adds to an account from now on, once
    it is added (`IAMBackend.create_access_key` and `create_temp_access_key`)."""
    for name in ("create_access_key", "create_temp_access_key"):
        add = getattr(iam_backend, name)

        def added_and_counted(self: Any, *args: Any, _add: Any = add, **kwargs: Any) -> Any:
            key = _add(self, *args, **kwargs)
            accounts_of_keys.key_made()
            return key

        setattr(iam_backend, name, added_and_counted)


def _existing_first(backend_dict: Any) -> Callable[[Any, str], Any]:
    """`BackendDict.__getitem__` answering an account whose backends exist from the dict,
    while the dict is among those a reset clears (`_instances`, which moto's lookup fills and
    its reset empties); moto's answers (and makes and enters) the others."""
    moto_getitem = backend_dict.__getitem__

    def existing_first(backends: Any, account_id: str) -> Any:
        found = dict.get(backends, account_id)
        if found is not None and any(d is backends for d in backend_dict._instances):
            return found
        return moto_getitem(backends, account_id)

    return existing_first


def _random_strings(moto_s: Callable[..., str]) -> Callable[..., str]:
    """`MotoRandom.get_random_string`: the same characters, from the same draws of the
    generator as `Random.choice` makes them (see the module's docstring); moto's own for a
    generator whose `choice` or `_randbelow` is another. Stateless."""
    import random
    import string

    choice = random.Random.choice
    randbelow = random.Random._randbelow_with_getrandbits  # type: ignore[attr-defined]

    def get_random_string(
        generator: Any, length: int = 20, include_digits: bool = True, lower_case: bool = False
    ) -> str:
        kind = type(generator)
        if (
            kind.choice is not choice
            or kind._randbelow is not randbelow
            or "choice" in vars(generator)
            or "_randbelow" in vars(generator)
        ):
            return moto_s(generator, length, include_digits, lower_case)
        pool = string.ascii_letters
        if include_digits:
            pool += string.digits
        size = len(pool)
        bits = size.bit_length()
        draw = generator.getrandbits
        picked = []
        for _ in range(length):
            drawn = draw(bits)
            while drawn >= size:
                drawn = draw(bits)
            picked.append(pool[drawn])
        random_str = "".join(picked)
        return random_str.lower() if lower_case else random_str

    return get_random_string


_REQUEST_ID_IN_BODY = r"(?<=<RequestId>).*(?=<\/RequestId>)"  # moto.core.responses' pattern


class _Re(ModuleType):
    """The `re` module as `moto.core.responses` sees it: its `sub` answers a body without
    `<RequestId>` itself (see the module's docstring), everything else is the module's."""

    def __init__(self, module: ModuleType) -> None:
        super().__init__(module.__name__, module.__doc__)
        self.module = module
        sub = module.sub

        def sub_request_id(
            pattern: Any, repl: Any, string: Any, count: Any = 0, flags: Any = 0
        ) -> Any:
            if (
                type(string) is str
                and type(pattern) is str
                and pattern == _REQUEST_ID_IN_BODY
                and type(flags) is int
                and flags == 0  # moto's call: no IGNORECASE
                and "<RequestId>" not in string
            ):
                return string  # nothing for the pattern to match
            return sub(pattern, repl, string, count, flags)

        self.sub = sub_request_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


def install_dispatch_speedups() -> None:
    """Patch moto's per-request lookups once; later calls (from any thread) do nothing."""
    global _installed
    from moto import backends
    from moto.core import base_backend, responses, routing, utils
    from moto.iam import models as iam_models
    from moto.moto_api._internal.moto_random import MotoRandom
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    with _lock:
        if _installed:
            return
        listed = tuple(backends.list_of_moto_modules())

        def list_of_moto_modules() -> Iterable[str]:
            return listed

        backends.list_of_moto_modules = list_of_moto_modules
        responses.method_names_from_class = _function_names  # type: ignore[attr-defined,assignment]
        service_model = _made_once(utils.get_service_model)
        for module in (utils, responses, routing):  # each imported it by name
            module.get_service_model = service_model  # type: ignore[attr-defined]
        service_router = _made_once(routing.get_service_router)
        for module in (routing, responses):
            module.get_service_router = service_router  # type: ignore[attr-defined]
        _moto["get_account_id_from"] = iam_models.get_account_id_from
        _moto["get_backend_for_host"] = DomainDispatcherApplication.get_backend_for_host
        accounts_of_keys = _AccountsOfKeys(_moto["get_account_id_from"])
        iam_models.get_account_id_from = accounts_of_keys
        _count_keys_made(iam_models.IAMBackend, accounts_of_keys)
        _moto["BackendDict.__getitem__"] = base_backend.BackendDict.__getitem__
        existing_first = _existing_first(base_backend.BackendDict)
        base_backend.BackendDict.__getitem__ = existing_first  # type: ignore[method-assign]
        backend_of_host = _BackendsOfHosts(_moto["get_backend_for_host"])

        def get_backend_for_host(dispatcher: Any, host: Any) -> Any:
            return backend_of_host(dispatcher, host)

        DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign,assignment]
        _moto["get_random_string"] = MotoRandom.get_random_string
        random_strings = _random_strings(_moto["get_random_string"])
        MotoRandom.get_random_string = random_strings  # type: ignore[method-assign]
        _moto["re"] = responses_re = getattr(responses, "re")  # noqa: B009
        setattr(responses, "re", _Re(responses_re))  # noqa: B010
        _installed = True
