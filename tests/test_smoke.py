async def test_create_and_get(api):
    alice = api("alice")
    reply = await alice("POST", "/tasks", {"name": "Report"})
    assert reply.status == 201, reply
    got = await alice("GET", f"/tasks/{reply.body['id']}")
    assert got.body["name"] == "Report"
    assert got.body["owner"] == "alice"
    assert (await api("bob")("GET", f"/tasks/{reply.body['id']}")).status == 404
    assert (await api("eve")("GET", "/tasks")).status == 403
    assert (await api(None)("GET", "/tasks")).status == 403
    bad = await alice("POST", "/tasks", "{nope")
    assert bad.status == 400 and "JSON" in bad.body["message"], bad
    bad = await alice("POST", "/tasks", {"name": "x", "colour": 1})
    assert bad.status == 400 and bad.body["field"] == "colour", bad
