"""The local AWS emulator of resolver-mesh: moto, extended where the product needs more of AWS.

One module per emulated service; none of it ships in the Lambda layer. `route53profiles` adds
Amazon Route 53 Profiles, which moto lacks. The older extensions (Route 53 Resolver, RAM, service
names, the server wrapper) still live in `resolver_mesh.local` while others edit them; a later
step moves them here.
"""
