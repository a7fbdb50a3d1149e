"""Opt-in Regions that an account has not enabled, on the local emulator.

`regions_not_enabled(emulator, {account: regions})` gives, while the block runs, AWS's rules for
a Region an account has not enabled (AWS Account Management Reference Guide, "Specify which AWS
Regions your account can use"; EC2 API Reference, DescribeRegions):

- ec2 `DescribeRegions` made by the account reports each as `not-opted-in`, and lists it only
  when asked for it (`AllRegions`, or by name in `RegionNames`);
- every call the account signs for such a Region is refused as AWS refuses credentials it does
  not accept there: EC2 with `AuthFailure` (HTTP 401), JSON and REST-JSON services with
  `UnrecognizedClientException`, query services with `InvalidClientTokenId` (HTTP 403).

Only opt-in Regions can be left disabled: the Regions AWS enables by default (those it opened
before 20 March 2019) are refused here with a `ValueError`. Every other opt-in Region is one the
account has enabled, as moto serves it: `DescribeRegions` reports it `opted-in`, where moto 5.2.5
reports `not-opted-in` for every account while serving it (`install_region_opt_in` patches
moto's answer once, for every request; it reads the Regions of the blocks in force).
`RegionGate` is the refusal as a WSGI middleware around the moto server: the account is the one
moto finds for the request's access key, the Region the one of its SigV4 credential scope; it
counts what it refused.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from mesh_emulator.scp import StartResponse, signed_region
from mesh_emulator.server import LocalEmulator

NOT_OPTED_IN = "not-opted-in"
OPTED_IN = "opted-in"
# The Regions every account has enabled and cannot disable (AWS General Reference, "Managing
# AWS Regions": those introduced before 20 March 2019).
ENABLED_BY_DEFAULT = frozenset(
    {
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "ap-south-1",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-southeast-1",
        "ap-southeast-2",
        "ca-central-1",
        "eu-central-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eu-north-1",
        "sa-east-1",
    }
)
_ACCESS_KEY = re.compile(r"Credential=([^/]+)/")
_MESSAGES = {
    "AuthFailure": "AWS was not able to validate the provided access credentials",
    "UnrecognizedClientException": "The security token included in the request is invalid.",
    "InvalidClientTokenId": "The security token included in the request is invalid.",
}
_gate_lock = threading.Lock()
_BLOCKS: list[Mapping[str, frozenset[str]]] = []  # the `regions_not_enabled` blocks in force
_MARKER = "_resolver_mesh_region_opt_in"


def _account_of(environ: dict[str, Any]) -> str:
    """The account moto finds for the request's access key ("" when it is not signed)."""
    from moto.iam import models as iam_models

    found = _ACCESS_KEY.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    return str(iam_models.get_account_id_from(found.group(1))) if found else ""


class RegionGate:
    """A WSGI middleware refusing every request an account signs for a Region it has not
    enabled (`not_enabled`: account -> Regions)."""

    def __init__(self, app: Any, not_enabled: Mapping[str, frozenset[str]]) -> None:
        self.app = app
        self.not_enabled = not_enabled
        self.refused: Counter[tuple[str, str]] = Counter()  # by (account, Region)
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        region = signed_region(environ)
        account = _account_of(environ) if region else ""
        if region not in self.not_enabled.get(account, frozenset()):
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        with self._lock:
            self.refused[(account, region)] += 1
        content_type = str(environ.get("CONTENT_TYPE", ""))
        query = content_type.startswith("application/x-www-form-urlencoded")
        if query and "/ec2/" in str(environ.get("HTTP_AUTHORIZATION", "")):
            code, status = "AuthFailure", "401 Unauthorized"
            body = (
                f"<Response><Errors><Error><Code>{code}</Code><Message>{_MESSAGES[code]}"
                "</Message></Error></Errors><RequestID>not-enabled</RequestID></Response>"
            ).encode()
            headers = [("Content-Type", "text/xml")]
        elif query:
            code, status = "InvalidClientTokenId", "403 Forbidden"
            body = (
                f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>"
                f"{_MESSAGES[code]}</Message></Error><RequestId>not-enabled</RequestId>"
                "</ErrorResponse>"
            ).encode()
            headers = [("Content-Type", "text/xml")]
        else:
            code, status = "UnrecognizedClientException", "403 Forbidden"
            body = json.dumps({"__type": code, "message": _MESSAGES[code]}).encode()
            headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)]
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [body]


def install_region_opt_in() -> None:
    """Patch moto's DescribeRegions once (later calls do nothing): each account's opt-in
    Regions as `regions_not_enabled` has them (enabled, but for those of the blocks in force)."""
    from moto.core.responses import ActionResult
    from moto.ec2.models.availability_zones_and_regions import Region
    from moto.ec2.responses.availability_zones_and_regions import AvailabilityZonesAndRegions

    with _gate_lock:
        if getattr(AvailabilityZonesAndRegions, _MARKER, False):
            return

        def describe_regions(self: Any) -> ActionResult:
            self.error_on_dryrun()
            names = self._get_param("RegionNames", [])
            every = str(self._get_param("AllRegions", "false")).lower() == "true" or bool(names)
            closed = _closed_of(self.current_account)
            regions = []
            for region in self.ec2_backend.describe_regions(names):
                if region.name in closed:
                    if every:
                        regions.append(Region(region.name, region.endpoint, NOT_OPTED_IN))
                elif region.opt_in_status == NOT_OPTED_IN:  # moto serves it: enabled
                    regions.append(Region(region.name, region.endpoint, OPTED_IN))
                else:
                    regions.append(region)
            return ActionResult({"Regions": regions})

        AvailabilityZonesAndRegions.describe_regions = describe_regions  # type: ignore[method-assign]
        setattr(AvailabilityZonesAndRegions, _MARKER, True)


def _closed_of(account: str) -> frozenset[str]:
    with _gate_lock:
        return frozenset().union(*(block.get(account, frozenset()) for block in _BLOCKS))


@contextmanager
def regions_not_enabled(
    emulator: LocalEmulator, not_enabled: Mapping[str, Iterable[str]]
) -> Iterator[RegionGate]:
    """For the block, each account of `not_enabled` has not enabled its Regions there."""
    closed = {account: frozenset(regions) for account, regions in not_enabled.items()}
    for account, regions in closed.items():
        if always := ", ".join(sorted(regions & ENABLED_BY_DEFAULT)):
            raise ValueError(f"{always}: enabled by default in every account ({account})")
    install_region_opt_in()
    with _gate_lock:
        _BLOCKS.append(closed)
    try:
        with emulator.wrapped(lambda app: RegionGate(app, closed)) as gate:
            yield gate
    finally:
        with _gate_lock:
            _BLOCKS.remove(closed)
