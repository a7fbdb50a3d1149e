"""The product's one definition of the hubs table (`table create`, the demo, the tests) is the
table template.yaml declares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cfnlint.decode  # type: ignore[import-untyped]

from resolver_mesh.aws.hubs import POINT_IN_TIME_RECOVERY, table_definition
from resolver_mesh.names import OWNER_TAG_KEY

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def _hubs_table_properties() -> dict[str, Any]:
    decoded, matches = cfnlint.decode.decode(TEMPLATE)
    assert not matches, [str(m) for m in matches]
    properties: dict[str, Any] = json.loads(json.dumps(decoded))["Resources"]["HubsTable"][
        "Properties"
    ]
    return properties


def test_table_definition_is_the_templates_hubs_table() -> None:
    template = _hubs_table_properties()
    definition = table_definition("hubs", "mesh-a")

    assert definition["AttributeDefinitions"] == template["AttributeDefinitions"]
    assert definition["KeySchema"] == template["KeySchema"]
    assert definition["BillingMode"] == template["BillingMode"]
    assert definition["StreamSpecification"] == {
        "StreamEnabled": True,
        **template["StreamSpecification"],
    }
    # CloudFormation's SSEEnabled: true is KMS with the AWS managed key (no key id given).
    assert template["SSESpecification"] == {"SSEEnabled": True}
    assert definition["SSESpecification"] == {"Enabled": True, "SSEType": "KMS"}
    assert template["PointInTimeRecoverySpecification"] == POINT_IN_TIME_RECOVERY
    assert template["Tags"] == [{"Key": OWNER_TAG_KEY, "Value": {"Ref": "MeshId"}}]
    assert definition["Tags"] == [{"Key": OWNER_TAG_KEY, "Value": "mesh-a"}]
    # Nothing else: a property added to the template must be added to the definition too.
    compared = {
        "AttributeDefinitions",
        "KeySchema",
        "BillingMode",
        "StreamSpecification",
        "SSESpecification",
        "PointInTimeRecoverySpecification",
        "Tags",
    }
    assert set(template) == compared
    assert set(definition) == {"TableName"} | compared - {"PointInTimeRecoverySpecification"}
