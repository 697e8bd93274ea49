"""Instance administration: create, detail, update, delete, listing."""

import os
import re

from conftest import ECHO_COMMAND, assert_failure, ok


def test_create_instance(stack):
    data = ok(stack.api.post("/api/instance", key=stack.admin_key,
                             params={"daemonId": stack.daemon_id},
                             json_body={"nickname": "echo-owned",
                                        "startCommand": ECHO_COMMAND,
                                        "stopCommand": "^C",
                                        "cwd": "",
                                        "ie": "utf-8",
                                        "oe": "utf-8",
                                        "type": "universal",
                                        "processType": "general",
                                        "terminalOption": {"pty": False}}))
    assert re.fullmatch(r"[0-9a-f]{32}", data["instanceUuid"]), data
    assert data["nickname"] == "echo-owned"
    config = data["config"]
    assert config["startCommand"] == ECHO_COMMAND
    assert config["stopCommand"] == "^C"
    # The daemon normalises encodings and makes the working folder absolute.
    assert config["ie"] == "utf8"
    assert config["oe"] == "utf8"
    assert os.path.isabs(config["cwd"]), config["cwd"]
    assert config["cwd"].rstrip("/").endswith(data["instanceUuid"])
    assert config["terminalOption"]["pty"] is False


def test_instance_detail(stack):
    uuid = stack.create_instance(nickname="detail")
    detail = stack.instance(uuid)
    assert detail["instanceUuid"] == uuid
    assert detail["status"] == 0
    assert detail["config"]["nickname"] == "detail"
    assert set(detail) >= {"instanceUuid", "started", "autoRestarted",
                           "status", "config", "info", "space",
                           "processInfo"}, sorted(detail)


def test_instance_config_persisted(stack):
    uuid = stack.create_instance(nickname="persisted")
    path = stack.daemon_dir / "InstanceConfig" / f"{uuid}.json"
    assert path.is_file(), f"{path} missing"


def test_update_instance(stack):
    uuid = stack.create_instance(nickname="before")
    data = ok(stack.api.put("/api/instance", key=stack.admin_key,
                            params={"uuid": uuid,
                                    "daemonId": stack.daemon_id},
                            json_body={"nickname": "after",
                                       "stopCommand": "stop"}))
    assert data["instanceUuid"] == uuid
    config = stack.instance(uuid)["config"]
    assert config["nickname"] == "after"
    assert config["stopCommand"] == "stop"
    assert config["startCommand"] == ECHO_COMMAND


def test_update_survives_daemon_restart(stack):
    uuid = stack.create_instance(nickname="before")
    ok(stack.api.put("/api/instance", key=stack.admin_key,
                     params={"uuid": uuid, "daemonId": stack.daemon_id},
                     json_body={"nickname": "after"}))
    stack.daemon.stop_and_check()
    stack.daemon.start()
    stack.wait_available(stack.daemon_id, timeout=60)
    assert stack.instance(uuid)["config"]["nickname"] == "after"


def test_detail_unknown_instance(stack):
    missing = "0" * 32
    resp = stack.api.get("/api/instance", key=stack.admin_key,
                         params={"uuid": missing,
                                 "daemonId": stack.daemon_id})
    assert_failure(resp, 500, f"The operation failed, the instance "
                   f"{missing} does not exist.")


def test_delete_instance(stack):
    keep = stack.create_instance(nickname="keep")
    deleted = stack.create_instance(nickname="deleted")
    data = ok(stack.api.delete("/api/instance", key=stack.admin_key,
                               params={"daemonId": stack.daemon_id},
                               json_body={"uuids": [deleted],
                                          "deleteFile": True}))
    assert data["instanceUuids"] == [deleted]
    page = ok(stack.api.get("/api/service/remote_service_instances",
                            key=stack.admin_key,
                            params={"daemonId": stack.daemon_id,
                                    "page": 1, "page_size": 10}))
    assert [i["instanceUuid"] for i in page["data"]] == [keep]


def test_delete_removes_config_file(stack):
    uuid = stack.create_instance()
    ok(stack.api.delete("/api/instance", key=stack.admin_key,
                        params={"daemonId": stack.daemon_id},
                        json_body={"uuids": [uuid], "deleteFile": True}))
    path = stack.daemon_dir / "InstanceConfig" / f"{uuid}.json"
    assert not path.exists()


def test_delete_missing_instance(stack):
    resp = stack.api.delete("/api/instance", key=stack.admin_key,
                            params={"daemonId": stack.daemon_id},
                            json_body={"uuids": ["0" * 32],
                                       "deleteFile": False})
    assert_failure(resp, 500, "The target instance does not exist!")


def test_delete_requires_uuids(stack):
    resp = stack.api.delete("/api/instance", key=stack.admin_key,
                            params={"daemonId": stack.daemon_id},
                            json_body={"deleteFile": False})
    assert_failure(resp, 400, 'Validator failed: "uuids" is required!')


def test_delete_running_instance_refused(stack):
    uuid = stack.create_instance()
    ok(stack.operate("open", uuid))
    stack.wait_status(uuid, 3)
    resp = stack.api.delete("/api/instance", key=stack.admin_key,
                            params={"daemonId": stack.daemon_id},
                            json_body={"uuids": [uuid],
                                       "deleteFile": False})
    assert resp.status_code == 500
    assert stack.instance(uuid)["status"] == 3
    ok(stack.operate("kill", uuid))
    stack.wait_status(uuid, 0)


def test_instance_paging(stack):
    names = ["alpha", "bravo", "charlie"]
    for name in names:
        stack.create_instance(nickname=name)
    first = ok(stack.api.get("/api/service/remote_service_instances",
                             key=stack.admin_key,
                             params={"daemonId": stack.daemon_id,
                                     "page": 1, "page_size": 2}))
    second = ok(stack.api.get("/api/service/remote_service_instances",
                              key=stack.admin_key,
                              params={"daemonId": stack.daemon_id,
                                      "page": 2, "page_size": 2}))
    assert first["page"] == 1
    assert first["pageSize"] == 2
    assert first["maxPage"] == 2
    # Stopped instances sort by nickname.
    assert [i["config"]["nickname"] for i in first["data"]] == names[:2]
    assert [i["config"]["nickname"] for i in second["data"]] == names[2:]


def test_instance_paging_name_filter(stack):
    for name in ["alpha", "Bravo", "charlie"]:
        stack.create_instance(nickname=name)
    page = ok(stack.api.get("/api/service/remote_service_instances",
                            key=stack.admin_key,
                            params={"daemonId": stack.daemon_id,
                                    "page": 1, "page_size": 10,
                                    "instance_name": "bra"}))
    assert [i["config"]["nickname"] for i in page["data"]] == ["Bravo"]


def test_instance_paging_requires_page(stack):
    resp = stack.api.get("/api/service/remote_service_instances",
                         key=stack.admin_key,
                         params={"daemonId": stack.daemon_id})
    assert_failure(resp, 400, 'Validator failed: "page" is required!')


def test_instances_survive_daemon_restart(stack):
    uuids = {stack.create_instance(nickname=n) for n in ["one", "two"]}
    stack.daemon.stop_and_check()
    stack.daemon.start()
    stack.wait_available(stack.daemon_id, timeout=60)
    page = ok(stack.api.get("/api/service/remote_service_instances",
                            key=stack.admin_key,
                            params={"daemonId": stack.daemon_id,
                                    "page": 1, "page_size": 10}))
    assert {i["instanceUuid"] for i in page["data"]} == uuids
