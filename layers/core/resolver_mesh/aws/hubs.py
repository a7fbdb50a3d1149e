"""The hubs table adapter: read every item, write and remove one.

Invariants:
- `read_items` reads the whole table with strongly consistent reads and either returns every
  item or raises: a partial read is never returned as if it were the table.
- Items go in and out as plain Python values (DynamoDB string sets become Python sets).
- `table_definition` and `POINT_IN_TIME_RECOVERY` are the one definition of the table in the
  code: `table create`, the demo and the tests make it from them, and a test compares them with
  template.yaml's `HubsTable`.
- A table that does not exist is a `MissingTableError` naming the table, its Region and the
  settings that choose it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from resolver_mesh.aws.calls import Caller, error_code, scan_table
from resolver_mesh.names import OWNER_TAG_KEY

_deserializer = TypeDeserializer()
_serializer = TypeSerializer()

KEY_SCHEMA = ({"AttributeName": "region", "KeyType": "HASH"},)
# Not part of CreateTable: switched on by UpdateContinuousBackups once the table is ACTIVE.
POINT_IN_TIME_RECOVERY = {"PointInTimeRecoveryEnabled": True}


class TableMismatchError(Exception):
    """A table of that name exists, with another key: it is not a hubs table."""


def table_definition(name: str, mesh_id: str) -> dict[str, Any]:
    """The CreateTable request of the hubs table, as template.yaml declares it: key `region`,
    on demand, a stream of both images (the template's pipe reads it), encrypted with the AWS
    managed KMS key (`SSEEnabled: true`), tagged with the mesh id."""
    return {
        "TableName": name,
        "AttributeDefinitions": [{"AttributeName": "region", "AttributeType": "S"}],
        "KeySchema": [dict(key) for key in KEY_SCHEMA],
        "BillingMode": "PAY_PER_REQUEST",
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        "SSESpecification": {"Enabled": True, "SSEType": "KMS"},
        "Tags": [{"Key": OWNER_TAG_KEY, "Value": mesh_id}],
    }


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
            raw = scan_table(self.call, self.client, self.name)
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

    def create(self, mesh_id: str) -> bool:
        """Create the table from `table_definition`, wait until it is ACTIVE and switch on
        point-in-time recovery. False, and nothing changed, when a table of that name exists
        with the hubs key (waiting for it if it is still being created);
        `TableMismatchError` when it exists with another key."""
        try:
            self.call(self.client.create_table, **table_definition(self.name, mesh_id))
            created = True
        except self.client.exceptions.ResourceInUseException:
            created = False
        if not created:
            found = self.call(self.client.describe_table, TableName=self.name)["Table"]
            if tuple(found["KeySchema"]) != KEY_SCHEMA:
                raise TableMismatchError(
                    f"the table {self.name} exists with the key {found['KeySchema']},"
                    f" not {list(KEY_SCHEMA)}: it is not a hubs table"
                )
        self.client.get_waiter("table_exists").wait(
            TableName=self.name,
            WaiterConfig={"Delay": 2, "MaxAttempts": 150},
        )
        if created:
            self.call(
                self.client.update_continuous_backups,
                TableName=self.name,
                PointInTimeRecoverySpecification=POINT_IN_TIME_RECOVERY,
            )
        return created
