"""The hubs table adapter: read every item, write and remove one.

Invariants:
- `read_items` reads the whole table with strongly consistent reads and either returns every
  item or raises: a partial read is never returned as if it were the table.
- Items go in and out as plain Python values (DynamoDB string sets become Python sets).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from resolver_mesh.aws.calls import Caller

_deserializer = TypeDeserializer()
_serializer = TypeSerializer()


class HubsTable:
    """The DynamoDB table of hub items, keyed by `region`."""

    def __init__(self, name: str, client: Any, caller: Caller) -> None:
        self.name = name
        self.client = client
        self.call = caller

    def read_items(self) -> list[dict[str, Any]]:
        raw = self.call.pages(
            self.client.scan,
            "Items",
            cursor_param="ExclusiveStartKey",
            cursor_key="LastEvaluatedKey",
            TableName=self.name,
            ConsistentRead=True,
        )
        return [{k: _deserializer.deserialize(v) for k, v in item.items()} for item in raw]

    def put_item(self, item: Mapping[str, Any]) -> None:
        self.call(
            self.client.put_item,
            TableName=self.name,
            Item={k: _serializer.serialize(v) for k, v in item.items() if v is not None},
        )

    def remove_item(self, region: str) -> bool:
        """Remove the hub of `region`; False when there was none."""
        response = self.call(
            self.client.delete_item,
            TableName=self.name,
            Key={"region": {"S": region}},
            ReturnValues="ALL_OLD",
        )
        return bool(response.get("Attributes"))
