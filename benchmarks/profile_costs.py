"""Associations and monthly cost of delivering a full mesh's rules, `rules` versus `profile`.

    .venv/bin/python benchmarks/profile_costs.py [--regions 3 8 16] [--vpcs 10 50 200]

Pure arithmetic (no AWS, no emulator). N hub Regions of one account, each with V VPCs that get
the rules of the 2(N-1) peer domains (two per peer hub: `{region}.amazonaws.com` and
`{region}.vpce.amazonaws.com`):

- `rules`: every VPC gets every rule associated directly: V x 2(N-1) rule associations per
  Region. The Route 53 pricing page lists no charge for Resolver rules or rule associations
  (Resolver is billed by endpoint ENI-hours and queries, the same in both modes), so the
  delivery itself costs nothing.
- `profile`: one Profile per Region holds the 2(N-1) rules (resource associations) and is
  associated with the V VPCs. Route 53 Profiles are billed per account and Region by the hour:
  `HOURLY_BASE` for up to `INCLUDED_ASSOCIATIONS` Profile-VPC associations, and
  `HOURLY_PER_EXTRA_ASSOCIATION` for each one beyond (prices below, with their source). The
  Profile's owner pays for the associations of the VPCs of other accounts too.

A month is `HOURS_PER_MONTH` hours. Endpoints and queries are left out: both modes need the
same endpoints and answer the same queries.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

# Price of Route 53 Profiles, USD, as quoted from https://aws.amazon.com/route53/pricing/
# ("$0.75 per AWS account for up to 100 Profile-VPC associations", "$0.0014 per Profile-VPC
# association per hour per AWS Region" beyond them). The AWS page itself could not be opened
# from here: the figures come from a verbatim transcription of it dated 2026-09-20, read
# 2026-11-30. Check the page before relying on them.
HOURLY_BASE = 0.75  # per account and Region, up to INCLUDED_ASSOCIATIONS associations
INCLUDED_ASSOCIATIONS = 100
HOURLY_PER_EXTRA_ASSOCIATION = 0.0014
HOURS_PER_MONTH = 730
DOMAINS_PER_HUB = 2


@dataclass(frozen=True)
class MeshCost:
    """The whole mesh's delivery figures for N Regions of V VPCs each."""

    regions: int
    vpcs: int
    rule_associations: int  # `rules`
    profile_associations: int  # `profile`: Profile-VPC associations
    profile_resources: int  # `profile`: rules held by the Profiles
    rules_monthly: float
    profile_monthly: float


def profile_hourly(associations: int) -> float:
    """The hourly price of one account's Profile associations in one Region."""
    if associations <= 0:
        return 0.0
    extra = max(0, associations - INCLUDED_ASSOCIATIONS)
    return HOURLY_BASE + extra * HOURLY_PER_EXTRA_ASSOCIATION


def mesh_cost(regions: int, vpcs: int) -> MeshCost:
    if regions < 2 or vpcs < 1:
        raise ValueError("a mesh has at least 2 Regions and 1 VPC per Region")
    peer_rules = DOMAINS_PER_HUB * (regions - 1)  # rules each Region's VPCs need
    return MeshCost(
        regions=regions,
        vpcs=vpcs,
        rule_associations=regions * vpcs * peer_rules,
        profile_associations=regions * vpcs,
        profile_resources=regions * peer_rules,
        rules_monthly=0.0,
        profile_monthly=regions * profile_hourly(vpcs) * HOURS_PER_MONTH,
    )


def markdown(costs: list[MeshCost]) -> str:
    lines = [
        "| N | V | rule associations (`rules`) | Profile VPC associations + rules held"
        " (`profile`) | USD per month (`rules`) | USD per month (`profile`) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for c in costs:
        lines.append(
            f"| {c.regions} | {c.vpcs} | {c.rule_associations:,} | {c.profile_associations:,}"
            f" + {c.profile_resources:,} | {c.rules_monthly:,.2f} | {c.profile_monthly:,.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--regions", type=int, nargs="+", default=[3, 8, 16], help="Regions N")
    parser.add_argument("--vpcs", type=int, nargs="+", default=[10, 50, 200], help="VPCs V")
    args = parser.parse_args(argv)
    try:
        costs = [mesh_cost(n, v) for n in args.regions for v in args.vpcs]
    except ValueError as error:
        parser.error(str(error))
    print(markdown(costs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
