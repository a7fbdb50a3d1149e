"""Emulate two rules of EventBridge that moto 5.2.5 lacks: patterns on arrays of objects, and the
resource policy of a bus that receives events from other accounts.

Arrays of objects: EventBridge (its matcher, aws/event-ruler, README "JSON Array Matching")
"crushes out" the array structure, so that a pattern `{"items": {"resourceId": [...]}}` matches
an event whose `items` is a list of objects, one of which has a matching `resourceId` (CloudTrail
writes EC2's lists so: `resourcesSet.items[].resourceId`). moto only flattened nested objects.
`install_events_extensions` patches `moto.events.models.EventPattern._flatten_dict` so that the
leaf values found through arrays are gathered as a list under the array's path; lists of plain
values are unchanged. (Matching is per field, as Ruler's older `rulesForEvent`: two fields of one
pattern may match in different elements of one array.)

Bus policies:

AWS delivers an event that a rule of account A sends to an event bus of account B only when B's
bus policy lets A put events there ("Sending and receiving events between AWS accounts in Amazon
EventBridge", EventBridge User Guide); a policy may name the account, or allow `"*"` under an
`aws:PrincipalOrgID` condition (every account of one organisation). moto 5.2.5 delivers to any
bus of any account. `install_events_extensions` patches `moto.events.models.Rule.send_to_targets`
so that a target bus of another account receives the event only when its policy allows the
sender; targets in the rule's own account, and other kinds of targets, are unchanged.

The sender is the account of the target's `RoleArn` (the role EventBridge sends with), else the
rule's account. What is evaluated (the subset the templates use; anything else refuses):
- an `Allow` statement whose `Action` is (or lists) `events:PutEvents` or `events:*`, whose
  `Resource`, if present, is the bus's ARN, and whose `Principal` is either the sender account
  (`{"AWS": "arn:<partition>:iam::<id>:root"}`, or its id) without a `Condition`, or `"*"`
  (`{"AWS": "*"}`) with only `StringEquals` conditions on `aws:PrincipalOrgID` (the sender's
  organisation in moto's Organizations) and/or `aws:PrincipalAccount`;
- any `Deny` statement refuses every sender (fail closed: deny statements are not evaluated).
A refused delivery is dropped, as AWS drops it (counted in the rule's FailedInvocations).
"""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

_MARKER = "_mesh_events_extensions"
_lock = threading.Lock()
_PUT_EVENTS = frozenset({"events:PutEvents", "events:*"})


def organization_of(account: str) -> str | None:
    """The id of the organisation `account` belongs to in moto's Organizations, or None."""
    from moto.organizations.models import organizations_backends

    manager, partition = organizations_backends.master_accounts.get(account, (account, "aws"))
    backend = organizations_backends[manager][partition]
    if backend.org is not None and any(a.id == account for a in backend.accounts):
        return str(backend.org.id)
    return None


def allows(policy: str | None, bus_arn: str, sender: str) -> bool:
    """Whether a bus policy (JSON, or None) lets account `sender` put events on `bus_arn`."""
    if not policy:
        return False
    statements = json.loads(policy).get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    if any(s.get("Effect") == "Deny" for s in statements):
        return False
    return any(_allows(statement, bus_arn, sender) for statement in statements)


def _allows(statement: dict[str, Any], bus_arn: str, sender: str) -> bool:
    actions = statement.get("Action", [])
    actions = {actions} if isinstance(actions, str) else set(actions)
    resource = statement.get("Resource", bus_arn)
    if statement.get("Effect") != "Allow" or not actions & _PUT_EVENTS or resource != bus_arn:
        return False
    principal = statement.get("Principal")
    principal = principal.get("AWS") if isinstance(principal, dict) else principal
    condition = statement.get("Condition")
    if principal in (sender, f"arn:aws:iam::{sender}:root") or (
        isinstance(principal, str) and principal.endswith(f":iam::{sender}:root")
    ):
        return not condition
    if principal != "*" or not isinstance(condition, dict) or set(condition) != {"StringEquals"}:
        return False
    facts = {"aws:PrincipalOrgID": organization_of(sender), "aws:PrincipalAccount": sender}
    wanted = condition["StringEquals"]
    if not wanted or set(wanted) - set(facts):
        return False
    for key, values in wanted.items():
        values = [values] if isinstance(values, str) else list(values)
        if facts[key] is None or facts[key] not in values:
            return False
    return True


def flatten(node: Any, prefix: str = "", result: dict[str, Any] | None = None) -> dict[str, Any]:
    """An event's fields by dotted path; through an array of objects, every element's leaf
    values gathered as a list under the array's path (EventBridge's array crushing)."""
    result = {} if result is None else result
    if not isinstance(node, dict):
        return result
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            flatten(value, path, result)
        elif isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
            _crush(value, path, result)
        else:
            result[path] = value
    return result


def _crush(values: list[Any], path: str, result: dict[str, Any]) -> None:
    for value in values:
        if isinstance(value, dict):
            for found, leaf in flatten(value, path).items():
                _gather(result, found, leaf)
        elif isinstance(value, list):
            _crush(value, path, result)
        else:
            _gather(result, path, value)


def _gather(result: dict[str, Any], path: str, value: Any) -> None:
    values = value if isinstance(value, list) else [value]
    before = result.get(path, [])
    result[path] = (before if isinstance(before, list) else [before]) + values


def install_events_extensions() -> None:
    """Patch moto's EventBridge once; later calls (from any thread) do nothing."""
    from moto.events.models import EventPattern, Rule, events_backends
    from moto.utilities.arns import parse_arn

    with _lock:
        if getattr(Rule, _MARKER, False):
            return
        EventPattern._flatten_dict = staticmethod(flatten)  # type: ignore[method-assign]
        original = Rule.send_to_targets

        def delivered(rule: Rule, target: dict[str, Any]) -> bool:
            arn = parse_arn(target["Arn"])
            if arn.service != "events" or arn.resource_type != "event-bus":
                return True
            if arn.account == rule.account_id:
                return True  # a bus of the rule's own account needs no policy
            role = target.get("RoleArn") or ""
            sender = role.split(":")[4] if role.count(":") >= 5 else rule.account_id
            bus = events_backends[arn.account][arn.region].event_buses.get(arn.resource_id)
            return bus is None or allows(bus.policy, bus.arn, sender)

        def send_to_targets(self: Rule, original_event: Any, transform_input: bool = True) -> None:
            allowed = [target for target in self.targets if delivered(self, target)]
            if len(allowed) == len(self.targets):
                original(self, original_event, transform_input)
                return
            narrowed = copy.copy(self)
            narrowed.targets = allowed
            original(narrowed, original_event, transform_input)

        Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]
        setattr(Rule, _MARKER, True)
