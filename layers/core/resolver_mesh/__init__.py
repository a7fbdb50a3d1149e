"""resolver-mesh: Route 53 Resolver forwarding rules kept in step with a table of peered hubs.

The flow is one straight line: scope -> observe -> plan -> check -> apply -> report.
`plan`, `desired`, `safety` and `models` are pure (no I/O); only `aws/` talks to AWS.
"""

__version__ = "0.1.0"
