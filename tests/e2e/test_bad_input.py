"""Bad input gets a clear error envelope and changes nothing stored."""

import http.client
import json

import pytest

from conftest import assert_failure, envelope, ok

# Fields that change without any request storing anything: the last start
# time and the runtime counters.
VOLATILE_CONFIG = {"lastDatetime"}


def snapshot(stack):
    """Return what the panel and the daemon store, as the API shows it."""
    page = ok(stack.api.get("/api/service/remote_service_instances",
                            key=stack.admin_key,
                            params={"daemonId": stack.daemon_id,
                                    "page": 1, "page_size": 50}))
    instances = sorted(
        (i["instanceUuid"],
         json.dumps({k: v for k, v in i["config"].items()
                     if k not in VOLATILE_CONFIG}, sort_keys=True),
         i["status"])
        for i in page["data"])
    nodes = sorted((n["uuid"], n["ip"], n["port"], n["remarks"])
                   for n in stack.nodes())
    users = ok(stack.api.get("/api/auth/search", key=stack.admin_key,
                             params={"page": 1, "page_size": 50}))
    user_rows = sorted((u["uuid"], u["userName"], u["permission"],
                        json.dumps(u["instances"], sort_keys=True))
                       for u in users["data"])
    settings = ok(stack.api.get("/api/overview/setting",
                                session=stack.admin_session,
                                token=stack.admin_token, xhr=True))
    return {"instances": instances, "nodes": nodes, "users": user_rows,
            "settings": settings}


@pytest.fixture
def seeded(stack):
    """One instance and one ordinary user, and the snapshot of it all."""
    uuid = stack.create_instance(nickname="seed")
    stack.create_user()
    return uuid, snapshot(stack)


def assert_unchanged_and_serving(stack, before):
    status = ok(stack.api.get("/api/auth/status"))
    assert status["isInstall"] is True
    after = snapshot(stack)
    assert after["instances"] == before["instances"]
    assert after["nodes"] == before["nodes"]
    assert after["users"] == before["users"]
    assert after["settings"] == before["settings"]


def post_raw(stack, path, body, content_type="application/json"):
    return stack.api.request(
        "POST", path, key=stack.admin_key,
        params={"daemonId": stack.daemon_id}, data=body,
        headers={"Content-Type": content_type})


def test_malformed_json_create(stack, seeded):
    _, before = seeded
    resp = post_raw(stack, "/api/instance", b'{"nickname": "x", ')
    body = envelope(resp)
    assert 400 <= resp.status_code < 600
    assert body["status"] == resp.status_code
    assert isinstance(body["data"], str)
    assert body["data"] != ""
    assert_unchanged_and_serving(stack, before)


def test_malformed_json_user(stack, seeded):
    _, before = seeded
    resp = stack.api.request("POST", "/api/auth", key=stack.admin_key,
                             data=b'{"username": ',
                             headers={"Content-Type": "application/json"})
    body = envelope(resp)
    assert 400 <= resp.status_code < 600
    assert body["status"] == resp.status_code
    assert_unchanged_and_serving(stack, before)


def test_json_of_wrong_type(stack, seeded):
    _, before = seeded
    resp = stack.api.put("/api/auth", key=stack.admin_key,
                         json_body=["not", "an", "object"])
    body = envelope(resp)
    assert 400 <= resp.status_code < 600
    assert body["status"] == resp.status_code
    assert_unchanged_and_serving(stack, before)


def test_missing_daemon_id_on_create(stack, seeded):
    _, before = seeded
    resp = stack.api.post("/api/instance", key=stack.admin_key,
                          json_body={"nickname": "x"})
    assert_failure(resp, 400, 'Validator failed: "daemonId" is required!')
    assert_unchanged_and_serving(stack, before)


def test_missing_user_fields(stack, seeded):
    _, before = seeded
    resp = stack.api.post("/api/auth", key=stack.admin_key,
                          json_body={"username": "user9"})
    assert_failure(resp, 400, 'Validator failed: "password" is required!')
    assert_unchanged_and_serving(stack, before)


def test_permission_not_a_number(stack, seeded):
    _, before = seeded
    resp = stack.api.post("/api/auth", key=stack.admin_key,
                          json_body={"username": "user9",
                                     "password": "UserPass1234",
                                     "permission": "lots"})
    assert_failure(resp, 400,
                   'Validator failed: "permission" is not a number')
    assert_unchanged_and_serving(stack, before)


def test_unknown_instance_update(stack, seeded):
    _, before = seeded
    resp = stack.api.put("/api/instance", key=stack.admin_key,
                         params={"uuid": "0" * 32,
                                 "daemonId": stack.daemon_id},
                         json_body={"nickname": "ghost"})
    body = envelope(resp)
    assert resp.status_code == 500
    assert body["status"] == 500
    assert_unchanged_and_serving(stack, before)


def test_unknown_instance_open(stack, seeded):
    _, before = seeded
    assert_failure(stack.operate("open", "0" * 32), 500,
                   "The target instance does not exist!")
    assert_unchanged_and_serving(stack, before)


def test_unknown_node_create(stack, seeded):
    _, before = seeded
    resp = stack.api.post("/api/instance", key=stack.admin_key,
                          params={"daemonId": "f" * 32},
                          json_body={"nickname": "nowhere"})
    body = envelope(resp)
    assert resp.status_code == 500
    assert body["status"] == 500
    assert_unchanged_and_serving(stack, before)


def test_unknown_node_open(stack, seeded):
    uuid, before = seeded
    resp = stack.api.get("/api/protected_instance/open",
                         key=stack.admin_key,
                         params={"uuid": uuid, "daemonId": "f" * 32})
    assert_failure(resp, 500, "Initialization failed, the remote node does "
                   "not exist!")
    assert_unchanged_and_serving(stack, before)


def test_unknown_node_delete(stack, seeded):
    _, before = seeded
    resp = stack.api.delete("/api/service/remote_service",
                            key=stack.admin_key, params={"uuid": "f" * 32})
    envelope(resp)
    assert_unchanged_and_serving(stack, before)


def send_oversized(port, path, size):
    """POST size bytes of JSON; return (status, body) or the error.

    A server may send 413 and close before reading the whole body, so a
    failed send is tolerated as long as the response arrives.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        chunk = b" " * (1 << 20)
        sent = 0
        try:
            conn.send(b'{"nickname": "')
            sent = 14
            while sent < size - 2:
                piece = chunk[:min(len(chunk), size - 2 - sent)]
                conn.send(piece)
                sent += len(piece)
            conn.send(b'"}')
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_oversized_body(stack, seeded):
    _, before = seeded
    key = stack.admin_key
    path = f"/api/instance?daemonId={stack.daemon_id}&apikey={key}"
    status, raw = send_oversized(stack.panel_port, path,
                                 10 * 1024 * 1024 + 4096)
    assert status == 413, raw[:300]
    body = json.loads(raw)
    assert body["status"] == 413
    assert isinstance(body["data"], str)
    assert_unchanged_and_serving(stack, before)


def test_nonexistent_start_command(stack, seeded):
    _, before_seed = seeded
    uuid = stack.create_instance(
        nickname="missing-binary",
        start_command="/nonexistent/hearth-no-such-program --flag")
    before = snapshot(stack)
    resp = stack.operate("open", uuid)
    body = envelope(resp)
    assert 400 <= resp.status_code < 600
    assert body["status"] == resp.status_code
    assert isinstance(body["data"], str)
    assert body["data"] != ""
    assert stack.instance(uuid)["status"] == 0
    assert_unchanged_and_serving(stack, before)


def test_empty_start_command(stack, seeded):
    uuid = stack.create_instance(nickname="empty", start_command="")
    before = snapshot(stack)
    resp = stack.operate("open", uuid)
    body = envelope(resp)
    assert 400 <= resp.status_code < 600
    assert body["status"] == resp.status_code
    assert stack.instance(uuid)["status"] == 0
    assert_unchanged_and_serving(stack, before)


def test_wrong_method_known_route(stack, seeded):
    _, before = seeded
    resp = stack.api.delete("/api/overview", key=stack.admin_key)
    body = envelope(resp)
    assert resp.status_code == 500
    assert body["data"] is None
    assert_unchanged_and_serving(stack, before)


def test_binary_garbage_body(stack, seeded):
    _, before = seeded
    resp = post_raw(stack, "/api/instance", bytes(range(256)) * 4)
    body = envelope(resp)
    assert 400 <= resp.status_code < 600
    assert body["status"] == resp.status_code
    assert_unchanged_and_serving(stack, before)


def test_many_bad_requests_keep_serving(stack, seeded):
    _, before = seeded
    for i in range(50):
        post_raw(stack, "/api/instance", b"{" * (i + 1))
    assert_unchanged_and_serving(stack, before)
