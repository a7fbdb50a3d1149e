"""The unit tests form a package, so that their module names (unit.test_verify) do not clash
with the integration tests of the same basename."""
