"""Fixtures of the fault-injection tests (the harness itself is in faultkit.py).

- `make_fault_mesh(registered=...)`: a fresh emulator state with four hubs, the hubs table and
  unmanaged rules; returns a `faultkit.FaultMesh`.
- `ledger`: the session's results collector; `pytest_terminal_summary` prints its one line.
- `_atomic_resolver_writes`, `_no_default_amis` (per module, automatic): the emulator made
  atomic where AWS is, and quicker to fill.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from faultkit import (
    HUB_REGIONS,
    LEDGER,
    FaultLedger,
    FaultMesh,
    build_fault_mesh,
    client_factory,
)

from mesh_emulator.server import LocalEmulator
from resolver_mesh.local.topology import ClientFactory


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed and report.nodeid.startswith("tests/faults/"):
        LEDGER.failed_tests.append(report.nodeid.rpartition("/")[2])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if LEDGER.runs:
        terminalreporter.write_line(LEDGER.summary())


@pytest.fixture
def ledger() -> FaultLedger:
    return LEDGER


@pytest.fixture
def make_fault_mesh(aws: ClientFactory, emulator: LocalEmulator) -> Callable[..., FaultMesh]:
    """Factory: `make_fault_mesh(registered=HUB_REGIONS)`, see `faultkit.build_fault_mesh`."""

    def factory(
        registered: Iterable[str] = HUB_REGIONS, regions: tuple[str, ...] = HUB_REGIONS
    ) -> FaultMesh:
        # `aws` reset the emulator and pointed the environment at it; the mesh's own clients
        # share one botocore loader (see faultkit.new_session)
        return build_fault_mesh(client_factory(emulator), emulator, registered, regions)

    return factory


@pytest.fixture(scope="module", autouse=True)
def _no_default_amis() -> Iterator[None]:
    """moto loads ~10,000 default AMIs into every EC2 backend it makes (about 1 s per Region and
    test); none is used."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        yield


@pytest.fixture(scope="module", autouse=True)
def _atomic_resolver_writes(emulator: LocalEmulator) -> Iterator[None]:
    """Serialise moto's Route 53 Resolver writes, as AWS's own bookkeeping is atomic.

    moto checks "is this CreatorRequestId taken?" (and the moto extension "is this domain
    already associated with the VPC?") and then inserts, without a lock: two server threads can
    both pass the check. AWS does not let two creates with one CreatorRequestId both succeed, so
    without this a race between two reconcilers would test moto's check-then-insert, not
    resolver-mesh. Only the emulator is changed; the product's code is not.
    """
    from moto.route53resolver.models import Route53ResolverBackend

    lock = threading.RLock()
    names = (
        "create_resolver_rule",
        "update_resolver_rule",
        "delete_resolver_rule",
        "associate_resolver_rule",
        "disassociate_resolver_rule",
    )
    originals = {name: getattr(Route53ResolverBackend, name) for name in names}

    def atomic(method: Callable[..., Any]) -> Callable[..., Any]:
        def locked(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(*args, **kwargs)

        return locked

    for name, method in originals.items():
        setattr(Route53ResolverBackend, name, atomic(method))
    yield
    for name, method in originals.items():
        setattr(Route53ResolverBackend, name, method)
