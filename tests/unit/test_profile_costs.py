"""benchmarks/profile_costs.py: the arithmetic of associations and monthly cost."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "profile_costs.py"


@pytest.fixture(scope="module")
def costs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("profile_costs", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["profile_costs"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_two_regions_of_101_vpcs(costs: ModuleType) -> None:
    """One association past the included 100 in each Region."""
    cost = costs.mesh_cost(2, 101)
    assert cost.rule_associations == 2 * 101 * 2
    assert (cost.profile_associations, cost.profile_resources) == (202, 4)
    assert cost.rules_monthly == 0
    assert cost.profile_monthly == pytest.approx(2 * 730 * (0.75 + 0.0014))


def test_the_base_price_covers_up_to_100_associations(costs: ModuleType) -> None:
    assert costs.profile_hourly(0) == 0
    assert costs.profile_hourly(1) == costs.profile_hourly(100) == pytest.approx(0.75)
    assert costs.profile_hourly(200) == pytest.approx(0.75 + 100 * 0.0014)


def test_the_printed_table_has_every_cell(
    costs: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert costs.main(["--regions", "3", "--vpcs", "10", "200"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert rows == [
        "| 3 | 10 | 120 | 30 + 12 | 0.00 | 1,642.50 |",
        "| 3 | 200 | 2,400 | 600 + 12 | 0.00 | 1,949.10 |",
    ]
