"""A full quota (`LimitExceededException`) is reported as such, once, and breaks nothing else.

A tap in front of the emulator answers every CreateResolverRule in us-east-2 with HTTP 400
`LimitExceededException`, as AWS does when the Region's rules quota is reached.
"""

from __future__ import annotations

from collections.abc import Callable

from faultkit import FaultLedger, FaultMesh, tapped

from mesh_emulator.server import LocalEmulator

FULL = "us-east-2"
QUOTA_ERROR = (
    "400 Bad Request",
    "LimitExceededException",
    "Account has reached the maximum number of resolver rules in this Region",
)


def full_rule_quota(region: str, operation: str) -> tuple[str, str, str] | None:
    return QUOTA_ERROR if (region, operation) == (FULL, "CreateResolverRule") else None


def test_a_full_rule_quota_is_reported_not_retried(
    make_fault_mesh: Callable[..., FaultMesh], emulator: LocalEmulator, ledger: FaultLedger
) -> None:
    mesh = make_fault_mesh()
    plan = mesh.reconcile(apply=False).as_dict()
    planned = [c for c in plan["changes"] if c["region"] == FULL]
    creates = [c for c in planned if c["kind"] == "create_rule"]
    assert len(creates) == 6

    with tapped(emulator, answer=full_rule_quota) as tap:
        result = mesh.reconcile().as_dict()
    attempts = [s for s in tap.seen if (s.region, s.operation) == (FULL, "CreateResolverRule")]

    with ledger.run("rules quota full in us-east-2", {"quota": len(attempts)}):
        assert result["ok"] is False
        assert len(attempts) == len(creates)  # one attempt per rule: not retried
        failed = [c for c in result["changes"] if c["status"] != "applied"]
        assert {c["region"] for c in failed} == {FULL}
        quota = [e for e in result["errors"] if "quota" in e["message"].lower()]
        assert len(quota) == len(creates), result["errors"]
        assert all("QuotaExceededError" in e["message"] for e in quota), quota
        assert {e["message"].split(":")[0] for e in quota} == {
            f"create_rule {c['domain']} in {FULL}" for c in creates
        }
        # the associations of the rules that could not be made are skipped, not attempted,
        # and are no errors of their own: the quota error is their cause, reported once each
        assert [e for e in result["errors"] if e not in quota] == []
        skipped = [c for c in failed if c["status"] == "skipped"]
        assert len(skipped) == len(planned) - len(creates)
        assert all("was not created" in c["message"] for c in skipped), skipped
        assert not [
            s for s in tap.writes() if s.region == FULL and s.operation != "CreateResolverRule"
        ]
        # nothing else broke: the other Regions converged, us-east-2 has no rule of ours
        mesh.assert_invariants(converged=False)
        expected = mesh.expected()
        for region in mesh.regions:
            seen = mesh.observe(region)
            mine = {r["DomainName"]: r for r in seen.managed()}
            wanted = {d: e for (r, d), e in expected.items() if r == region}
            if region == FULL:
                assert mine == {}
                continue
            assert set(mine) == set(wanted), region
            for domain, want in wanted.items():
                assert seen.vpcs_of(mine[domain]["Id"]) == want.vpc_ids, (region, domain)

    with ledger.run("rules quota raised again", {}):
        follow_up = mesh.reconcile()
        assert follow_up.ok, follow_up.as_dict()
        assert follow_up.counts["create_rule"] == len(creates)
        mesh.assert_invariants()
