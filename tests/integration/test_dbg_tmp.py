import uuid
def test_outside_sweep(make_mesh):
    mesh = make_mesh(("us-east-1","us-east-2","us-west-2","ca-central-1"))
    r = mesh.resync()
    print("first", r["ok"], r["regions"], r["counts"])
    print({k: len(v) for k,v in mesh.managed_rules(("ca-central-1",)).items()})
    mesh.remove("ca-central-1")
    r = mesh.resync()
    print("after", r["ok"], r["regions"], r["counts"], r["refused"])
    print({k: len(v) for k,v in mesh.managed_rules(("ca-central-1",)).items()})
    assert 0

def test_outbound_change(mesh):
    mesh.resync()
    res = mesh.aws("route53resolver","us-east-2")
    hub = mesh.hubs["us-east-2"]
    sg = res.get_resolver_endpoint(ResolverEndpointId=hub.inbound_endpoint_id)["ResolverEndpoint"]["SecurityGroupIds"]
    new = res.create_resolver_endpoint(CreatorRequestId=uuid.uuid4().hex, Name="out2", SecurityGroupIds=sg, Direction="OUTBOUND",
        IpAddresses=[{"SubnetId": s} for s in hub.subnet_ids])["ResolverEndpoint"]["Id"]
    before = {r["Id"] for r in mesh.observe("us-east-2").managed()}
    mesh.update("us-east-2", outbound_endpoint_id=new)
    r = mesh.resync()
    print("outbound", r["ok"], r["counts"], r["errors"])
    after = mesh.observe("us-east-2").managed()
    print(before == {x["Id"] for x in after}, {x["ResolverEndpointId"] for x in after} == {new})
    mesh.assert_converged()
    print(mesh.resync()["calls"])
    assert 0
