"""Human-readable text for reports, hubs and live rules (the CLI's default output).

Invariant: rendering only reads its inputs; colour is used only when asked for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from resolver_mesh.models import RegionState
from resolver_mesh.plan import rule_target

_SYMBOLS = {
    "adopt_rule": "*",
    "create_rule": "+",
    "update_rule": "~",
    "associate": ">",
    "disassociate": "<",
    "delete_rule": "-",
    "create_share": "+",
    "share": ">",
    "unshare": "<",
    "delete_share": "-",
    "accept_share": "*",
    "create_profile": "+",
    "profile_add_rule": ">",
    "associate_profile": ">",
    "disassociate_profile": "<",
    "profile_remove_rule": "<",
    "delete_profile": "-",
}
_COLOURS = {"*": "34", "+": "32", "~": "33", ">": "36", "<": "35", "-": "31", "!": "31", "ok": "32"}


class Style:
    """ANSI colours when `enabled`, plain text otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, key: str) -> str:
        code = _COLOURS.get(key)
        return f"\033[{code}m{text}\033[0m" if self.enabled and code else text

    def bold(self, text: str) -> str:
        return f"\033[1m{text}\033[0m" if self.enabled else text


def _change_line(change: Mapping[str, Any]) -> str:
    kind = change["kind"]
    domain = change.get("domain", "").rstrip(".")
    if change.get("source"):
        domain += f" (spoke {change['source']})"
    if kind.endswith("share"):
        rules, accounts = len(change.get("resources", [])), change.get("principals", [])
        what = change.get("name") or change.get("share_arn", "?")
        what += f": {rules} rule(s)" if rules else ""
        what += f", account(s) {', '.join(accounts)}" if accounts else ""
    elif "profile" in kind:
        what = change.get("profile_id") or change.get("name") or "the new Profile"
        if change.get("resources"):
            what += f": {domain or change['resources'][0]}"
        if change.get("vpc_id"):
            what += f" {'from' if kind.startswith('dis') else 'with'} {change['vpc_id']}"
    elif kind == "adopt_rule":
        what = f"{domain} ({change.get('rule_id', '?')}) -> {change.get('target_region', '?')}"
    elif kind in ("create_rule", "update_rule"):
        targets = ", ".join(change.get("targets", [])) or "targets unchanged"
        what = f"{domain} -> {change.get('target_region', '?')} [{targets}]"
    elif kind in ("associate", "disassociate"):
        what = f"{domain} {'with' if kind == 'associate' else 'from'} {change.get('vpc_id')}"
    else:
        what = f"{domain} ({change.get('rule_id', '?')})"
    label = kind.replace("_", " ")
    label = f"{label:<13}" if len(label) < 13 else f"{label} "
    reason = f"  ({change['reason']})" if change.get("reason") else ""
    status = change.get("status", "planned")
    message = f": {change['message']}" if change.get("message") else ""
    suffix = "" if status in ("planned", "applied") else f"  [{status}{message}]"
    return f"{label}{what}{reason}{suffix}"


def report_text(report: Mapping[str, Any], style: Style) -> str:
    """A plan or resync report, grouped by Region, then the problems, then a summary line.
    It says that every Region is in step only when the report is ok."""
    lines: list[str] = []
    regions = ", ".join(report.get("regions", [])) or "none"
    lines.append(style.bold(f"{_title(report)} mesh {report.get('mesh_id', '')!s} in {regions}"))
    current = None
    for change in report.get("changes", []):
        where = change["region"] + (
            f" in account {change['account']}" if "account" in change else ""
        )
        if where != current:
            current = where
            lines.append(f"  {style.bold(current)}")
        symbol = _SYMBOLS[change["kind"]]
        failed = change.get("status") in ("failed", "skipped")
        lines.append(f"    {style(symbol, '!' if failed else symbol)} {_change_line(change)}")
    if not report.get("planned", True):
        lines.append("  nothing planned: the desired state could not be read (see Errors)")
    elif not report.get("changes"):
        in_step = report.get("ok")
        lines.append(f"  no changes{': every Region is in step' if in_step else ' (see below)'}")
    joined = report.get("joined") or []
    if joined:
        lines.append(style.bold("Joined by tag:"))
        lines += [f"  - {_joined_line(vpc)}" for vpc in joined]
    for title, key in (
        ("Refused", "refused"),
        ("Conflicts", "conflicts"),
        ("Not joined", "not_joined"),
        ("Errors", "errors"),
        ("Degraded", "degraded"),
        ("Notes", "notes"),
    ):
        entries = report.get(key) or []
        if entries:
            lines.append(style.bold(f"{title}:"))
            lines += [f"  {style('!', '!') if key != 'notes' else '-'} {_text(e)}" for e in entries]
    if report.get("refused"):
        lines.append("  nothing was applied; rerun with --force if this is intended")
    if report.get("interrupted"):
        lines.append(style(_interrupted_text(report), "!"))
    lines.append(summary_text(report, style))
    return "\n".join(lines)


def _joined_line(vpc: Mapping[str, Any]) -> str:
    """`vpc-1 (account 222222222222) uses the hub of us-east-1 (shared)`."""
    account = f" (account {vpc['account']})" if vpc.get("account") else ""
    return f"{vpc['vpc_id']}{account} uses the hub of {vpc['region']} ({vpc['role']})"


def _title(report: Mapping[str, Any]) -> str:
    """What the report is: a plan, or what an apply did."""
    if report.get("action") != "resync":
        return "Plan for"
    if report.get("refused") or not report.get("planned", True):
        return "Nothing applied to"
    return "Applied to"


def _interrupted_text(report: Mapping[str, Any]) -> str:
    changes = report.get("changes", [])
    not_started = sum(1 for change in changes if change.get("status") == "not started")
    if report.get("applied"):
        done = sum(1 for change in changes if change.get("status") == "applied")
        return f"interrupted: {done} changes applied, {not_started} not started"
    return "interrupted: the plan may be incomplete"


def summary_text(report: Mapping[str, Any], style: Style) -> str:
    """One line: ok or not, the changes by kind (applied ones after an apply), the calls that
    succeeded, those that failed (each failed attempt), and the time."""
    counts = report.get("counts", {})
    summary = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if n) or "0 changes"
    calls = report.get("calls", {})
    failed = "".join(
        f", {calls[key]} {key.replace('_', ' ')}"
        for key in ("failed_reads", "failed_writes")
        if calls.get(key)
    )
    state = style("ok", "ok") if report.get("ok") else style("NOT OK", "!")
    return (
        f"{state}: {summary}; {calls.get('reads', 0)} reads, {calls.get('writes', 0)} writes"
        f"{failed} in {report.get('duration_seconds', 0)}s"
    )


def _text(entry: Any) -> str:
    return str(entry["message"]) if isinstance(entry, Mapping) else str(entry)


def hubs_text(items: Iterable[Mapping[str, Any]]) -> str:
    """One line per item; ACCOUNT, SPOKES and SHARED columns appear once an item uses them;
    DESCRIPTION (free text) comes last."""
    items = sorted(items, key=lambda i: str(i.get("region")))
    extra = any(i.get("account_id") or i.get("spokes") or i.get("shared_vpcs") for i in items)
    header = ("REGION", "VPC", "INBOUND", "OUTBOUND", "VPC_IDS", "ENABLED")
    rows = [header + (("ACCOUNT", "SPOKES", "SHARED") if extra else ()) + ("DESCRIPTION",)]
    for item in items:
        row: tuple[str, ...] = (
            str(item.get("region")),
            str(item.get("vpc_id", "-")),
            str(item.get("inbound_endpoint_id", "-")),
            str(item.get("outbound_endpoint_id") or "-"),
            ",".join(sorted(item.get("vpc_ids") or [])) or "-",
            "yes" if item.get("enabled", True) is True else str(item.get("enabled")),
        )
        if extra:
            spokes = [s for s in item.get("spokes") or [] if isinstance(s, Mapping)]
            modes = Counter(str(s.get("mode")) for s in spokes)
            row += (
                str(item.get("account_id") or "-"),
                ", ".join(f"{n} {mode}" for mode, n in sorted(modes.items())) or "-",
                str(len(item.get("shared_vpcs") or [])),
            )
        rows.append((*row, " ".join(str(item.get("description") or "-").split())))
    if len(rows) == 1:
        return "no hubs in the table"
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def rules_text(states: Iterable[RegionState], mesh_id: str, style: Style) -> str:
    """Live forwarding rules per Region, ours marked with the Region they forward to."""
    lines = []
    for state in states:
        account = f" in account {state.account}" if state.account else ""
        lines.append(style.bold(state.region + account))
        if state.error:
            lines.append(f"  {style('!', '!')} cannot read: {state.error}")
            continue
        vpcs: dict[str, list[str]] = {}
        for association in state.associations:
            vpcs.setdefault(association.rule_id, []).append(association.vpc_id)
        forward = sorted(
            (r for r in state.rules if r.rule_type == "FORWARD"), key=lambda r: r.domain
        )
        if not forward:
            lines.append("  (no forwarding rules)")
        for rule in forward:
            target = rule_target(rule, mesh_id)
            owner = f"-> {target}" if target else "(not ours)"
            if target and rule.share_status == "SHARED_WITH_ME":
                owner = f"shared {owner}"
            ips = ", ".join(t.ip for t in sorted(rule.targets))
            associated = ", ".join(sorted(vpcs.get(rule.id, []))) or "no VPC"
            lines.append(f"  {rule.domain.rstrip('.'):<34} {owner:<14} [{ips}]  on {associated}")
    return "\n".join(lines)
