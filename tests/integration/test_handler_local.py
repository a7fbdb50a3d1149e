"""The Lambda handler runs locally without a Lambda context: `lambda_handler(event, None)`, or
`lambda_handler(event)`, against the HTTP emulator."""

from __future__ import annotations

from typing import Any

from meshkit import Mesh, app


def test_the_handler_runs_with_context_none(make_mesh: Any) -> None:
    mesh: Mesh = make_mesh(("us-east-2", "us-west-2"))

    planned = app.lambda_handler({"action": "plan"}, None)

    assert planned["ok"] is True, planned
    assert (planned["counts"]["create_rule"], planned["counts"]["associate"]) == (4, 4)
    # what Powertools logged the run with
    assert app.logger.get_current_keys()["function_name"] == "resolver-mesh-local"

    applied = app.lambda_handler({"action": "resync"})
    assert applied["ok"] is True, applied
    assert (applied["counts"]["create_rule"], applied["counts"]["associate"]) == (4, 4)
    mesh.assert_converged()
