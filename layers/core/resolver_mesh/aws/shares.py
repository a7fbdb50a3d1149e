"""The AWS RAM adapter for one account's Region: our shares of rules, and invitations to them.

Invariants:
- Only shares tagged with this mesh's owner tag are read, and so only they are ever changed.
- Writes are idempotent towards retries: sharing what is shared, unsharing what is not, deleting
  a deleted share and accepting an accepted invitation all succeed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from resolver_mesh.aws.calls import Caller, error_code
from resolver_mesh.models import ObservedInvitation, ObservedShare
from resolver_mesh.names import OWNER_TAG_KEY

PAGE_SIZE = 100
LIVE_SHARE = ("ACTIVE", "PENDING")
LIVE_ASSOCIATION = ("ASSOCIATED", "ASSOCIATING")
_GONE = ("UnknownResourceException", "ResourceShareInvitationAlreadyAcceptedException")


class RamRegion:
    """AWS RAM in one account's Region, through that Region's rate-limited `Caller`."""

    def __init__(self, region: str, client: Any, caller: Caller) -> None:
        self.region = region
        self.client = client
        self.call = caller

    def _pages(self, operation: Any, key: str, **kwargs: Any) -> Iterable[Any]:
        return self.call.pages(operation, key, "nextToken", "nextToken", **kwargs)

    def our_shares(self, mesh_id: str) -> tuple[ObservedShare, ...]:
        """The live shares this account owns with our owner tag, and what they share."""
        raw = self._pages(
            self.client.get_resource_shares,
            "resourceShares",
            resourceOwner="SELF",
            tagFilters=[{"tagKey": OWNER_TAG_KEY, "tagValues": [mesh_id]}],
            maxResults=PAGE_SIZE,
        )
        return tuple(
            ObservedShare(
                arn=share["resourceShareArn"],
                name=share.get("name", ""),
                resources=self._associated(share["resourceShareArn"], "RESOURCE"),
                principals=self._associated(share["resourceShareArn"], "PRINCIPAL"),
            )
            for share in raw
            if share.get("status") in LIVE_SHARE
        )

    def _associated(self, share_arn: str, kind: str) -> frozenset[str]:
        raw = self._pages(
            self.client.get_resource_share_associations,
            "resourceShareAssociations",
            associationType=kind,
            resourceShareArns=[share_arn],
            maxResults=PAGE_SIZE,
        )
        return frozenset(
            str(a["associatedEntity"]) for a in raw if a.get("status") in LIVE_ASSOCIATION
        )

    def pending_invitations(self) -> tuple[ObservedInvitation, ...]:
        raw = self._pages(
            self.client.get_resource_share_invitations,
            "resourceShareInvitations",
            maxResults=PAGE_SIZE,
        )
        return tuple(
            ObservedInvitation(
                arn=invitation["resourceShareInvitationArn"],
                share_name=invitation.get("resourceShareName", ""),
                sender=invitation.get("senderAccountId", ""),
                share_arn=invitation.get("resourceShareArn", ""),
            )
            for invitation in raw
            if invitation.get("status") == "PENDING"
        )

    def create_share(
        self, name: str, resources: Iterable[str], principals: Iterable[str], mesh_id: str
    ) -> str:
        response = self.call(
            self.client.create_resource_share,
            name=name,
            resourceArns=list(resources),
            principals=list(principals),
            tags=[{"key": OWNER_TAG_KEY, "value": mesh_id}],
            allowExternalPrincipals=True,
        )
        return str(response["resourceShare"]["resourceShareArn"])

    def share(self, share_arn: str, resources: Iterable[str], principals: Iterable[str]) -> None:
        self._change(self.client.associate_resource_share, share_arn, resources, principals)

    def unshare(self, share_arn: str, resources: Iterable[str], principals: Iterable[str]) -> None:
        try:
            self._change(self.client.disassociate_resource_share, share_arn, resources, principals)
        except ClientError as error:
            if error_code(error) not in _GONE:  # the share, or what it shared, is gone already
                raise

    def _change(
        self, operation: Any, share_arn: str, resources: Iterable[str], principals: Iterable[str]
    ) -> None:
        arguments: dict[str, Any] = {"resourceShareArn": share_arn}
        if resources := list(resources):
            arguments["resourceArns"] = resources
        if principals := list(principals):
            arguments["principals"] = principals
        self.call(operation, **arguments)

    def delete_share(self, share_arn: str) -> None:
        self._idempotent(self.client.delete_resource_share, resourceShareArn=share_arn)

    def accept(self, invitation_arn: str) -> None:
        self._idempotent(
            self.client.accept_resource_share_invitation,
            resourceShareInvitationArn=invitation_arn,
        )

    def _idempotent(self, operation: Any, **kwargs: Any) -> None:
        try:
            self.call(operation, **kwargs)
        except ClientError as error:
            if error_code(error) not in _GONE:
                raise
