"""Organizations on the emulator answers as AWS has since 9 September 2026: an account's
`State`, without the `Status` AWS retired; a delegated administrator keeps its `Status`."""

from __future__ import annotations

from resolver_mesh.local.topology import ClientFactory

REGION = "us-east-1"


def test_accounts_are_answered_with_their_state_and_without_the_retired_status(
    aws: ClientFactory,
) -> None:
    org = aws("organizations", REGION)
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    ou = org.create_organizational_unit(ParentId=root, Name="workloads")["OrganizationalUnit"]
    made = [
        org.create_account(Email=f"a{n}@example.com", AccountName=f"a{n}")["CreateAccountStatus"][
            "AccountId"
        ]
        for n in range(2)
    ]
    for account in made:
        org.move_account(AccountId=account, SourceParentId=root, DestinationParentId=ou["Id"])
    org.close_account(AccountId=made[1])

    listed = org.list_accounts()["Accounts"]
    in_ou = org.list_accounts_for_parent(ParentId=ou["Id"])["Accounts"]
    described = org.describe_account(AccountId=made[0])["Account"]
    for account in [*listed, *in_ou, described]:
        assert "Status" not in account
        assert account["State"] in ("ACTIVE", "SUSPENDED")
    assert {a["Id"]: a["State"] for a in in_ou} == {made[0]: "ACTIVE", made[1]: "SUSPENDED"}

    org.enable_aws_service_access(ServicePrincipal="ssm.amazonaws.com")
    org.register_delegated_administrator(AccountId=made[0], ServicePrincipal="ssm.amazonaws.com")
    [admin] = org.list_delegated_administrators()["DelegatedAdministrators"]
    assert (admin["Id"], admin["Status"], admin["State"]) == (made[0], "ACTIVE", "ACTIVE")
