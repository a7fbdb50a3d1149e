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

`install_dispatch_speedups` patches them, once per process; it changes no answer of any API.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable
from typing import Any

_lock = threading.Lock()
_installed = False


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


def install_dispatch_speedups() -> None:
    """Patch moto's two per-request lookups once; later calls (from any thread) do nothing."""
    global _installed
    from moto import backends
    from moto.core import responses, routing, utils

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
        _installed = True
