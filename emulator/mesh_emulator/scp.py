"""A service control policy that denies whole Regions, on the local emulator.

`denied_regions(emulator, regions)`: AWS still lists such a Region as enabled (`DescribeRegions`),
and refuses every call signed for it: JSON services with `AccessDeniedException`, EC2 with
`UnauthorizedOperation` (both HTTP 403, "with an explicit deny in a service control policy").
`RegionDenier` is that rule as a WSGI middleware around the moto server; it reads the Region from
the request's SigV4 credential scope and counts what it refused.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from mesh_emulator.server import LocalEmulator

# SigV4: `Credential=AKID/20250101/us-east-2/route53resolver/aws4_request`
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
_DENY = (
    "is not authorized to perform this operation in {region} with an explicit deny in a"
    " service control policy"
)

StartResponse = Callable[..., Any]


def signed_region(environ: dict[str, Any]) -> str:
    """The Region a request was signed for ("" when it is not signed with SigV4)."""
    found = _SCOPE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    return found.group(1) if found else ""


class RegionDenier:
    """A WSGI middleware refusing every request signed for one of `regions`, as an SCP does."""

    def __init__(self, app: Any, regions: Iterable[str]) -> None:
        self.app = app
        self.regions = frozenset(regions)
        self.refused: Counter[str] = Counter()  # by Region
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        region = signed_region(environ)
        if region not in self.regions:
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        with self._lock:
            self.refused[region] += 1
        message = "User: arn:aws:sts::123456789012:assumed-role/reconciler " + _DENY.format(
            region=region
        )
        content_type = str(environ.get("CONTENT_TYPE", ""))
        if content_type.startswith("application/x-www-form-urlencoded"):  # EC2's query protocol
            body = (
                "<Response><Errors><Error><Code>UnauthorizedOperation</Code>"
                f"<Message>{message}</Message></Error></Errors>"
                "<RequestID>denied-by-scp</RequestID></Response>"
            ).encode()
            headers = [("Content-Type", "text/xml")]
        else:  # JSON and REST-JSON services
            body = json.dumps({"__type": "AccessDeniedException", "message": message}).encode()
            headers = [
                ("Content-Type", "application/x-amz-json-1.1"),
                ("x-amzn-ErrorType", "AccessDeniedException"),
            ]
        start_response("403 Forbidden", [*headers, ("Content-Length", str(len(body)))])
        return [body]


@contextmanager
def denied_regions(emulator: LocalEmulator, regions: Iterable[str]) -> Iterator[RegionDenier]:
    """Deny every call in `regions` on `emulator` for the duration of the block."""
    with emulator.wrapped(lambda app: RegionDenier(app, regions)) as denier:
        yield denier
