"""The local AWS emulator of resolver-mesh: moto, extended where the product needs more of AWS.

One module per emulated service; none of it ships in the Lambda layer: `route53resolver`
(Resolver rules as AWS checks them), `ram` (RAM sharing across accounts), `organizations`
(accounts answered without the `Status` AWS retired), `ec2` (endpoint service names, Regions
newer than botocore, tags looked up by id), `route53profiles` (Route 53 Profiles, which moto
lacks), `events` (patterns on arrays of objects, bus policies for other accounts), `scp`
(Regions denied by a service control policy), `optin` (opt-in Regions an account has not
enabled), `dispatch` (moto's request dispatch without the
lookups it repeats on every request), `serialize` (moto's response serializer without the alias
search it repeats for every value, and its XML written without a SAX generator), `faults`
(injected failures), `server` (`LocalEmulator`, moto's server on 127.0.0.1) and `tls` (an
https endpoint on 127.0.0.1 with a CA of its own).
Only `install` and `server`'s `require_local_extras` may be imported without moto (the `local`
extras).
"""

from __future__ import annotations


def install() -> None:
    """Patch every extension into moto, for `mock_aws` and the server alike.

    Idempotent and safe from many threads: each extension installs itself once per process.
    """
    from mesh_emulator.dispatch import install_dispatch_speedups
    from mesh_emulator.ec2 import install_service_name_extensions, install_tag_lookup
    from mesh_emulator.events import install_events_extensions
    from mesh_emulator.optin import install_region_opt_in
    from mesh_emulator.organizations import install_organizations_extensions
    from mesh_emulator.ram import install_ram_extensions
    from mesh_emulator.route53profiles import install_route53profiles
    from mesh_emulator.route53resolver import install_resolver_extensions
    from mesh_emulator.serialize import install_serializer_speedups

    install_dispatch_speedups()
    install_serializer_speedups()
    install_resolver_extensions()
    install_ram_extensions()
    install_service_name_extensions()
    install_tag_lookup()
    install_route53profiles()
    install_events_extensions()
    install_organizations_extensions()
    install_region_opt_in()
