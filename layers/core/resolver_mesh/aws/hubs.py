"""The hubs table adapter: read every item, write and remove one.

Invariants:
- `read_items` reads the whole table with strongly consistent reads and either returns every
  item or raises: a partial read is never returned as if it were the table.
- Items go in and out as plain Python values (DynamoDB string sets become Python sets).
- A table that does not exist is a `MissingTableError` naming the table, its Region and the
  settings that choose it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from resolver_mesh.aws.calls import Caller, error_code

_deserializer = TypeDeserializer()
_serializer = TypeSerializer()


class MissingTableError(ClientError):  # type: ignore[misc]  # botocore is untyped
    """The hubs table does not exist (ResourceNotFoundException), said in the user's terms."""

    def __init__(self, error: ClientError, table: str, region: str) -> None:
        super().__init__(error.response, error.operation_name)
        self.args = (
            f"hubs table {table!r} not found in {region} (ResourceNotFoundException);"
            " set HUBS_TABLE_NAME or --table (and HOME_REGION or --home-region)",
        )


class HubsTable:
    """The DynamoDB table of hub items, keyed by `region`."""

    def __init__(self, name: str, client: Any, caller: Caller) -> None:
        self.name = name
        self.client = client
        self.call = caller

    @contextmanager
    def _named(self) -> Iterator[None]:
        try:
            yield
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                raise MissingTableError(error, self.name, self.client.meta.region_name) from None
            raise

    def read_items(self) -> list[dict[str, Any]]:
        with self._named():
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
        with self._named():
            self.call(
                self.client.put_item,
                TableName=self.name,
                Item={k: _serializer.serialize(v) for k, v in item.items() if v is not None},
            )

    def remove_item(self, region: str) -> bool:
        """Remove the hub of `region`; False when there was none."""
        with self._named():
            response = self.call(
                self.client.delete_item,
                TableName=self.name,
                Key={"region": {"S": region}},
                ReturnValues="ALL_OLD",
            )
        return bool(response.get("Attributes"))
