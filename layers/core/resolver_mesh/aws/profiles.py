"""The Route 53 Profiles adapter for one account's Region: our Profile, what it holds, and the
Profile associations of the account's VPCs.

Invariants:
- Every call goes through the location's rate-limited `Caller` (the Resolver's budget).
- A Profile is ours only with our name and our owner tag (read with ListTagsForResource); one
  shared with this account is ours when its ARN is one of `our_arns` (read where it lives).
- Writes are idempotent towards retries: adding a rule the Profile holds, removing one it does
  not, (dis)associating what already is and deleting a deleted Profile all succeed.
- A Profile is deleted right after the disassociations that free it: while AWS still holds
  them (ConflictException), the delete is tried again after each of `DELETE_WAITS`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from typing import Any

from botocore.exceptions import ClientError

from resolver_mesh.aws.calls import Caller, error_code
from resolver_mesh.models import (
    ObservedProfile,
    ObservedProfileAssociation,
    ObservedProfileResource,
    ProfileState,
)
from resolver_mesh.names import OWNER_TAG_KEY, profile_name

PAGE_SIZE = 100
_GONE = ("ResourceNotFoundException",)
# Seconds waited before each new try to delete a Profile whose VPC associations are still on
# their way out (DisassociateProfile answers DELETING; about 15 s in all).
DELETE_WAITS = (1.0, 2.0, 4.0, 8.0)


class ProfilesRegion:
    """Route 53 Profiles in one account's Region."""

    def __init__(self, region: str, client: Any, caller: Caller) -> None:
        self.region = region
        self.client = client
        self.call = caller

    def _pages(self, operation: Any, key: str, **kwargs: Any) -> Iterable[Any]:
        return self.call.pages(operation, key, MaxResults=PAGE_SIZE, **kwargs)

    def read(
        self, mesh_id: str, our_arns: Collection[str] = (), lean: bool = False
    ) -> ProfileState:
        """Every Profile the account sees (ours marked), every Profile association of its VPCs,
        and the rules our own Profiles hold. `lean`: where no Profile of ours is expected, no
        more than `ListProfiles` unless one has our name."""
        name = profile_name(mesh_id)
        summaries = list(self._pages(self.client.list_profiles, "ProfileSummaries"))
        if lean and not any(summary.get("Name") == name for summary in summaries):
            return ProfileState(tuple(_observed(summary, ours=False) for summary in summaries))
        profiles = [
            _observed(
                summary,
                ours=summary["Arn"] in our_arns
                if summary.get("ShareStatus") == "SHARED_WITH_ME"
                else summary.get("Name") == name and self._tagged_ours(summary["Arn"], mesh_id),
            )
            for summary in summaries
        ]
        associations = tuple(
            ObservedProfileAssociation(
                id=a["Id"], profile_id=a["ProfileId"], vpc_id=a["ResourceId"], status=a["Status"]
            )
            for a in self._pages(self.client.list_profile_associations, "ProfileAssociations")
        )
        resources = tuple(
            ObservedProfileResource(
                id=r["Id"],
                profile_id=r["ProfileId"],
                resource_arn=r["ResourceArn"],
                status=r["Status"],
            )
            for profile in profiles
            if profile.ours and profile.share_status != "SHARED_WITH_ME"
            for r in self._pages(
                self.client.list_profile_resource_associations,
                "ProfileResourceAssociations",
                ProfileId=profile.id,
            )
        )
        return ProfileState(tuple(profiles), associations, resources)

    def _tagged_ours(self, arn: str, mesh_id: str) -> bool:
        tags = self.call(self.client.list_tags_for_resource, ResourceArn=arn).get("Tags", {})
        return bool(tags.get(OWNER_TAG_KEY) == mesh_id)

    def create_profile(self, mesh_id: str) -> str:
        """A new Profile of ours; its id. The client token is fresh per change (retries of the
        same call reuse it): after a crash the next pass finds the Profile by its tag."""
        response = self.call(
            self.client.create_profile,
            Name=profile_name(mesh_id),
            ClientToken=f"{profile_name(mesh_id)}-{uuid.uuid4().hex}"[:64],
            Tags=[{"Key": OWNER_TAG_KEY, "Value": mesh_id}],
        )
        return str(response["Profile"]["Id"])

    def add_rule(self, profile_id: str, rule_arn: str, name: str) -> None:
        try:
            self.call(
                self.client.associate_resource_to_profile,
                ProfileId=profile_id,
                ResourceArn=rule_arn,
                Name=name,
            )
        except ClientError as error:
            if error_code(error) != "ConflictException" or not self._holds(profile_id, rule_arn):
                raise

    def _holds(self, profile_id: str, rule_arn: str) -> bool:
        return any(
            r["ResourceArn"] == rule_arn
            for r in self._pages(
                self.client.list_profile_resource_associations,
                "ProfileResourceAssociations",
                ProfileId=profile_id,
            )
        )

    def remove_rule(self, profile_id: str, rule_arn: str) -> None:
        self._idempotent(
            self.client.disassociate_resource_from_profile,
            ProfileId=profile_id,
            ResourceArn=rule_arn,
        )

    def associate(self, profile_id: str, vpc_id: str, mesh_id: str) -> None:
        try:
            self.call(
                self.client.associate_profile,
                ProfileId=profile_id,
                ResourceId=vpc_id,
                Name=profile_name(mesh_id),
                Tags=[{"Key": OWNER_TAG_KEY, "Value": mesh_id}],
            )
        except ClientError as error:
            if error_code(error) != "ResourceExistsException" or not self._associated(
                profile_id, vpc_id
            ):
                raise

    def _associated(self, profile_id: str, vpc_id: str) -> bool:
        return any(
            a["ProfileId"] == profile_id
            for a in self._pages(
                self.client.list_profile_associations, "ProfileAssociations", ResourceId=vpc_id
            )
        )

    def disassociate(self, profile_id: str, vpc_id: str) -> None:
        self._idempotent(self.client.disassociate_profile, ProfileId=profile_id, ResourceId=vpc_id)

    def delete_profile(self, profile_id: str) -> None:
        """Delete the Profile; while VPCs still hold it (ConflictException: their
        disassociations on their way), try again after each of `DELETE_WAITS`, then raise."""
        for wait in (*DELETE_WAITS, None):
            try:
                self._idempotent(self.client.delete_profile, ProfileId=profile_id)
                return
            except ClientError as error:
                if error_code(error) != "ConflictException" or wait is None:
                    raise
            self.call.sleep(wait)

    def _idempotent(self, operation: Any, **kwargs: Any) -> None:
        try:
            self.call(operation, **kwargs)
        except ClientError as error:
            if error_code(error) not in _GONE:
                raise


def _observed(summary: dict[str, Any], ours: bool) -> ObservedProfile:
    return ObservedProfile(
        id=summary["Id"],
        arn=summary["Arn"],
        name=summary.get("Name", ""),
        share_status=summary.get("ShareStatus", ""),
        ours=ours,
    )
