"""Organizations as AWS answers since 9 September 2026: accounts without `Status`.

AWS retired the `Status` of an account from the answers of `DescribeAccount`, `ListAccounts`
and `ListAccountsForParent` on 9 September 2026 (API Reference, `Account`: "use the `State`
parameter instead"); moto 5.2.5 still sends both. `install_organizations_extensions` patches
`moto.organizations.models.FakeAccount.describe` to leave `Status` out, so that code reading
only `Status` fails here as it would on AWS. A delegated administrator
(`ListDelegatedAdministrators`), whose `Status` AWS still documents, keeps it.
"""

from __future__ import annotations

import threading
from typing import Any

_MARKER = "_mesh_organizations_extensions"
_lock = threading.Lock()


def install_organizations_extensions() -> None:
    """Patch moto's accounts to answer as AWS does; idempotent and thread-safe."""
    from moto.organizations import models

    with _lock:
        if getattr(models, _MARKER, False):
            return
        describe_account = models.FakeAccount.describe
        describe_admin = models.FakeDelegatedAdministrator.describe

        def account(self: Any) -> dict[str, Any]:
            answer: dict[str, Any] = describe_account(self)
            answer.pop("Status", None)
            return answer

        def admin(self: Any) -> dict[str, Any]:
            answer: dict[str, Any] = describe_admin(self)
            return {**answer, "Status": self.account.status}

        models.FakeAccount.describe = account  # type: ignore[method-assign]
        models.FakeDelegatedAdministrator.describe = admin  # type: ignore[method-assign]
        setattr(models, _MARKER, True)
