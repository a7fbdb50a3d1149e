"""The AWS Organizations adapter: the member accounts under organisational units or a root.

Invariants:
- Reads only: `ListAccounts` (a root: the whole organisation, once `ListRoots` shows it is
  this organisation's root), `ListAccountsForParent` and
  `ListOrganizationalUnitsForParent` (an OU and the OUs nested in it), every page, through the
  one `Caller` of the Organizations budget. The number of calls is the number of pages, never
  a function of accounts times accounts. A walk is no snapshot: an account moved from one OU
  to another while it goes on may be listed by neither (the reconciler walks again before it
  takes an account for one that left).
- All or nothing: any error (AccessDenied, a parent that does not exist, throttling past the
  retries) raises; a partial list of members is never returned.
- Pages can be followed as they come (`found`): each page's ACTIVE accounts are handed on
  as soon as the page is read, so that work on them can start while the walk goes on; the
  list is whole only when `active_accounts` returns, and what was handed on before an error
  must be dropped with it.
- Only accounts whose `State` is ACTIVE are members: a PENDING_ACTIVATION, SUSPENDED,
  PENDING_CLOSURE or CLOSED account is not. AWS retired the older `Status` from these answers on
  9 September 2026 (API Reference, `Account`); it is read only where `State` is missing. An
  account that carries neither raises: whether it is a member cannot be told, and reading it
  as "not a member" would sweep it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any

from resolver_mesh.aws.calls import Caller

PAGE_SIZE = 20  # the largest MaxResults these three operations accept
ACTIVE = "ACTIVE"


class Organization:
    """AWS Organizations, from the management account or a delegated administrator."""

    def __init__(self, client: Any, caller: Caller) -> None:
        self.client = client
        self.call = caller

    def active_accounts(
        self, parents: Collection[str], found: Callable[[frozenset[str]], None] | None = None
    ) -> frozenset[str]:
        """The ids of the ACTIVE accounts under `parents` (OU ids, nested OUs included, or root
        ids, meaning the whole organisation); each page's are also given to `found` as soon as
        the page is read."""
        roots = {parent for parent in parents if parent.startswith("r-")}
        if roots:  # the whole organisation: once its root is known to be the one named
            known = {str(r["Id"]) for r in self._pages(self.client.list_roots, "Roots")}
            if roots - known:
                raise UnknownRootError(
                    f"{', '.join(sorted(roots - known))} is not the root of this organisation"
                    f" ({', '.join(sorted(known))}): a root id stands for every account"
                )
            return self._accounts(self.client.list_accounts, None, found)
        active: set[str] = set()
        waiting, seen = sorted(set(parents)), set(parents)
        while waiting:
            parent = waiting.pop()
            active |= self._accounts(self.client.list_accounts_for_parent, parent, found)
            children = self._pages(
                self.client.list_organizational_units_for_parent, "OrganizationalUnits", parent
            )
            for child in children:
                if str(child["Id"]) not in seen:
                    seen.add(str(child["Id"]))
                    waiting.append(str(child["Id"]))
        return frozenset(active)

    def _accounts(
        self,
        operation: Any,
        parent: str | None,
        found: Callable[[frozenset[str]], None] | None,
    ) -> frozenset[str]:
        """The ACTIVE accounts every page of `operation` lists, each page's given to `found`."""
        where = {"ParentId": parent} if parent else {}
        active: set[str] = set()
        pages = self.call.page_lists(operation, "Accounts", MaxResults=PAGE_SIZE, **where)
        for page in pages:
            listed = frozenset(_active(page))
            active |= listed
            if found is not None and listed:
                found(listed)
        return frozenset(active)

    def _pages(self, operation: Any, key: str, parent: str | None = None) -> Iterable[Any]:
        where = {"ParentId": parent} if parent else {}
        return self.call.pages(operation, key, MaxResults=PAGE_SIZE, **where)


class UnknownRootError(Exception):
    """A root id that is not the organisation's root (a typo would make every account a
    member)."""


class UnknownAccountStateError(Exception):
    """Organizations listed an account without its `State` (nor the older `Status`)."""


def _active(accounts: Iterable[dict[str, Any]]) -> set[str]:
    found = set()
    for account in accounts:
        state = account.get("State") or account.get("Status")
        if not state:
            raise UnknownAccountStateError(
                f"account {account.get('Id')!r} is listed without its State: whether it is"
                " ACTIVE cannot be told"
            )
        if state == ACTIVE:
            found.add(str(account["Id"]))
    return found
