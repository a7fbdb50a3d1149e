"""`report_text`: the header says plan or apply, "in step" only when it is true, and an
interrupted apply lists what was done and what was not started."""

from __future__ import annotations

from typing import Any

from resolver_mesh.render import Style, report_text
from resolver_mesh.report import Report

PLAIN = Style(enabled=False)


def change(kind: str, domain: str, status: str) -> dict[str, Any]:
    return {"kind": kind, "region": "us-east-1", "domain": domain, "status": status}


def report(action: str = "plan", **fields: Any) -> dict[str, Any]:
    made = Report(action=action, mesh_id="m", regions=["us-east-1"], planned=True)
    for name, value in fields.items():
        setattr(made, name, value)
    return made.as_dict()


def test_plan_and_apply_headers() -> None:
    assert report_text(report(), PLAIN).startswith("Plan for mesh m in us-east-1\n")
    assert report_text(report("resync"), PLAIN).startswith("Applied to mesh m in us-east-1\n")
    refused = report("resync", refused=["too many deletes"])
    assert report_text(refused, PLAIN).startswith("Nothing applied to mesh m in us-east-1\n")


def test_in_step_only_when_ok_and_planned() -> None:
    assert "no changes: every Region is in step" in report_text(report("resync"), PLAIN)
    unreadable = report(errors=[{"kind": "region", "message": "eu-west-1: cannot read"}])
    assert "in step" not in report_text(unreadable, PLAIN)
    assert "  no changes (see below)" in report_text(unreadable, PLAIN)
    table = {"kind": "table", "message": "hubs table 't' not found in us-east-1"}
    not_read = report("resync", planned=False, errors=[table])
    text = report_text(not_read, PLAIN)
    assert "in step" not in text
    assert "nothing planned: the desired state could not be read" in text
    assert text.startswith("Nothing applied to mesh m")


def test_an_interrupted_apply_lists_what_was_done() -> None:
    changes = [
        change("create_rule", "a.example.", "applied"),
        change("create_rule", "b.example.", "not started"),
        change("associate", "a.example.", "not started"),
    ]
    calls = {"reads": 5, "writes": 1, "failed_reads": 0, "failed_writes": 0}
    interrupted = report(
        "resync", applied=True, interrupted=True, changes=changes, counts={"create_rule": 1}
    )
    interrupted["calls"] = calls
    lines = report_text(interrupted, PLAIN).splitlines()
    assert lines[0] == "Applied to mesh m in us-east-1"
    assert lines[2] == "    + create rule  a.example -> ? [targets unchanged]"
    assert lines[3] == "    + create rule  b.example -> ? [targets unchanged]  [not started]"
    assert "interrupted: 1 changes applied, 2 not started" in lines
    assert lines[-1].startswith("NOT OK: 1 create rule; 5 reads, 1 writes in ")


def test_failed_calls_are_shown_apart() -> None:
    failed = report("resync", errors=[{"kind": "apply", "message": "x"}])
    failed["calls"] = {"reads": 3, "writes": 0, "failed_reads": 1, "failed_writes": 24}
    last = report_text(failed, PLAIN).splitlines()[-1]
    assert "3 reads, 0 writes, 1 failed reads, 24 failed writes in " in last


def test_earlier_passes_keep_the_errors_of_locations_not_read_again() -> None:
    """An account swept once as it left (read in pass 1 only) keeps its unreadable error in
    the run's report; a location the last pass read again is reported by that pass alone."""
    leaving, home = "us-east-1@222222222222", "us-east-1"
    first = Report(action="resync", regions=[home, leaving], planned=True)
    first.error("region", f"{leaving}: cannot read Route 53 Resolver: AccessDenied", leaving)
    first.error("region", f"{home}: cannot read Route 53 Resolver: Throttling", home)
    first.error("tags", f"{leaving}: cannot read the VPCs tagged", leaving)
    first.error("hub_item", "us-east-1: bad field", home)
    first.error("apply", "associate failed", home)
    second = Report(action="resync", regions=[leaving], planned=True)
    second.error("region", f"{leaving}: cannot read Route 53 Resolver: AccessDenied again", leaving)
    last = Report(action="resync", regions=[home], planned=True)

    last.include_earlier_passes([first, second])

    assert [(e["kind"], e["message"]) for e in last.errors] == [
        ("apply", "associate failed"),
        ("region", f"{leaving}: cannot read Route 53 Resolver: AccessDenied again"),
        ("tags", f"{leaving}: cannot read the VPCs tagged"),
    ]
    assert not last.ok
