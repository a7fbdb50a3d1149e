"""`resolver-mesh demo` runs end to end on its own emulator and shows every Region's rules."""

from __future__ import annotations

import os

from mesh_emulator.server import LocalEmulator
from resolver_mesh.local.demo import DEMO_REGIONS, JOINING_REGION, run_demo


def test_demo_runs_and_ends_ok(emulator: LocalEmulator) -> None:
    emulator.reset()  # moto's state is per process: start the demo from a clean slate
    saved = dict(os.environ)  # the demo points this process's AWS_* variables at its emulator
    lines: list[str] = []
    try:
        status = run_demo(out=lines.append)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    emulator.reset()
    text = "\n".join(lines)
    every_line = text.splitlines()  # `out` gets whole reports, several lines each

    assert status == 0, text
    assert every_line[-1] == "The demo is over; the emulator has stopped."
    assert "http://127.0.0.1:" in text
    assert "NOT OK" not in text
    summaries = [line for line in every_line if line.startswith("ok: ")]
    # plan, resync, second resync, join, new inbound IP, spokes, us-east-2 to a Profile
    assert len(summaries) == 7
    assert " 0 writes" in summaries[2]  # the second resync straight after does nothing
    # one spoke of each mode, and a VPC of the second account using the hub's rules
    # (the kinds in the order they first occur; the member follows the share in its pass)
    assert "7 create rule, 13 associate, 1 create share, 1 accept share" in summaries[5]
    # us-east-2's hub VPC: the Profile with the 6 rules first, then the 6 direct associations go
    assert (
        "6 disassociate, 1 create profile, 6 profile add rule, 1 associate profile"
        in (summaries[6])
    )
    assert "6 rules, VPCs vpc-" in text
    accounts = text.split("== Forwarding rules in us-east-1, in both accounts", 1)[1]
    member = accounts.split("us-east-1 in account 222222222222", 1)[1].split("==", 1)[0]
    central = [line for line in member.splitlines() if "shared" not in line and "->" in line]
    assert [line.split()[:3] for line in central] == [["amazonaws.com", "->", "us-east-1"]]
    assert sum("shared -> " in line for line in member.splitlines()) == 6

    final = text.rsplit("== Forwarding rules per Region, at the end", 1)[1].splitlines()
    regions = (*DEMO_REGIONS, JOINING_REGION)
    for region in regions:
        assert region in final, f"no section for {region}"
        section = final[final.index(region) + 1 :]
        rules = []
        for line in section:
            if not line.startswith("  "):
                break
            rules.append(line)
        forwarded = {line.split()[0] for line in rules}
        expected = {
            f"{peer}.{suffix}"
            for peer in regions
            if peer != region
            for suffix in ("amazonaws.com", "vpce.amazonaws.com")
        }
        assert forwarded == expected, (region, rules)
        assert all("-> " in line for line in rules)
    # the new inbound IP of us-east-2 reached the rules that forward to it
    assert any("us-east-2.amazonaws.com" in line and "10.4.0.53" in line for line in final)
