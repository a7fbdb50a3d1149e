"""Fixtures of the unit tests: the builders of builders.py.

`world` builds hub items and the endpoints their Regions would show; `converged` builds the
Region states that hold exactly the desired rules, as a finished reconcile leaves them.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from .builders import DROP, converged, hub_endpoints, hub_item, ids, region_state


@pytest.fixture
def world() -> SimpleNamespace:
    """Builders: `ids`, `item`, `endpoints`, `state`, `DROP`."""
    return SimpleNamespace(
        ids=ids, item=hub_item, endpoints=hub_endpoints, state=region_state, DROP=DROP
    )


@pytest.fixture(name="converged")
def converged_fixture() -> Any:
    return converged
