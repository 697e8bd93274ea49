"""Nodes (remote services): add, list, delete, availability, reconnect."""

import re
import time

from conftest import assert_failure, daemon_key, ok


def test_node_added_becomes_available(stack):
    # The stack fixture registered the daemon with its real key.
    node = stack.node(stack.daemon_id)
    assert re.fullmatch(r"[0-9a-f]{32}", stack.daemon_id), stack.daemon_id
    assert node["available"] is True
    assert node["ip"] == "127.0.0.1"
    assert node["port"] == stack.daemon_port
    assert node["remarks"] == "local"
    assert node["prefix"] == ""


def test_node_list_fields(stack):
    for node in stack.nodes():
        assert set(node) >= {"uuid", "ip", "port", "prefix", "available",
                             "remarks"}, node


def test_node_key_never_listed(stack):
    key = daemon_key(stack.daemon_dir)
    resp = stack.api.get("/api/service/remote_services_list",
                         key=stack.admin_key)
    assert key not in resp.text


def test_wrong_daemon_key_stays_unavailable(stack):
    uuid = stack.add_node(key="wrong-daemon-key", remarks="wrong")
    assert re.fullmatch(r"[0-9a-f]{32}", uuid), uuid
    assert uuid != stack.daemon_id
    # Give the panel time to connect and be turned away.
    time.sleep(3)
    node = stack.node(uuid)
    assert node is not None
    assert node["available"] is False


def test_second_node_same_daemon(stack):
    uuid = stack.add_node(remarks="second")
    stack.wait_available(uuid)
    assert len(stack.nodes()) == 2


def test_remote_services_include_instances(stack):
    instance = stack.create_instance()
    data = ok(stack.api.get("/api/service/remote_services",
                            key=stack.admin_key))
    (node,) = [n for n in data if n["uuid"] == stack.daemon_id]
    assert node["available"] is True
    uuids = [i["instanceUuid"] for i in node["instances"]]
    assert uuids == [instance]


def test_delete_node(stack):
    uuid = stack.add_node(remarks="to delete")
    assert ok(stack.api.delete("/api/service/remote_service",
                               key=stack.admin_key,
                               params={"uuid": uuid})) is True
    assert stack.node(uuid) is None
    assert stack.node(stack.daemon_id) is not None


def test_delete_node_missing_uuid(stack):
    resp = stack.api.delete("/api/service/remote_service",
                            key=stack.admin_key)
    assert_failure(resp, 400, 'Validator failed: "uuid" is required!')


def test_add_node_missing_fields(stack):
    resp = stack.api.post("/api/service/remote_service",
                          key=stack.admin_key,
                          json_body={"ip": "127.0.0.1",
                                     "port": stack.daemon_port})
    assert resp.status_code == 400
    assert len(stack.nodes()) == 1


def test_node_survives_panel_restart(stack):
    stack.panel.stop_and_check()
    stack.panel.start()
    stack.wait_available(stack.daemon_id)
    assert len(stack.nodes()) == 1


def test_reconnect_after_daemon_restart(stack):
    stack.daemon.stop_and_check()
    stack.wait_available(stack.daemon_id, available=False, timeout=20)
    stack.daemon.start()
    # The panel's Socket.IO client reconnects with backoff.
    stack.wait_available(stack.daemon_id, available=True, timeout=60)


def test_instance_usable_after_reconnect(stack):
    instance = stack.create_instance()
    stack.daemon.stop_and_check()
    stack.wait_available(stack.daemon_id, available=False, timeout=20)
    stack.daemon.start()
    stack.wait_available(stack.daemon_id, available=True, timeout=60)
    detail = stack.instance(instance)
    assert detail["instanceUuid"] == instance
    assert detail["status"] == 0


def test_unavailable_node_request_fails(stack):
    instance = stack.create_instance()
    stack.daemon.stop_and_check()
    stack.wait_available(stack.daemon_id, available=False, timeout=20)
    resp = stack.operate("open", instance)
    assert resp.status_code == 500
    # The panel must keep serving while the daemon is away.
    assert ok(stack.api.get("/api/auth/status"))["isInstall"] is True
    stack.daemon.start()
    stack.wait_available(stack.daemon_id, available=True, timeout=60)
