"""Instance operations under /api/protected_instance, and ownership."""

import pytest

from conftest import (assert_failure, envelope, group_members, ok,
                      read_proc_stat, wait_for)

FORBIDDEN = ("[Forbidden] [Middleware] Incorrect parameters or "
             "unauthorized access to the instance.")
ECHO_PATTERN = "while read l"


def assert_operation_shape(data, uuid, nickname):
    assert data["instanceUuid"] == uuid
    assert data["instances"] == [{"instanceUuid": uuid,
                                  "nickname": nickname}]


def test_open_command_outputlog_stop(stack):
    uuid = stack.create_instance(nickname="echo-owned")
    assert_operation_shape(ok(stack.operate("open", uuid)), uuid,
                           "echo-owned")
    stack.wait_status(uuid, 3)
    data = ok(stack.operate("command", uuid, params={"command": "hello"}))
    assert data == {"instanceUuid": uuid}
    stack.wait_output(uuid, "got:hello")
    assert_operation_shape(ok(stack.operate("stop", uuid)), uuid,
                           "echo-owned")
    stack.wait_status(uuid, 0)


def test_open_by_post(stack):
    uuid = stack.create_instance()
    ok(stack.operate("open", uuid, method="POST"))
    stack.wait_status(uuid, 3)
    ok(stack.operate("kill", uuid))
    stack.wait_status(uuid, 0)


def test_command_by_post_query(stack):
    uuid = stack.create_instance()
    ok(stack.operate("open", uuid))
    stack.wait_status(uuid, 3)
    ok(stack.operate("command", uuid, method="POST",
                     params={"command": "world"}))
    stack.wait_output(uuid, "got:world")
    ok(stack.operate("kill", uuid))
    stack.wait_status(uuid, 0)


def test_outputlog_size_keeps_tail(stack):
    uuid = stack.create_instance()
    ok(stack.operate("open", uuid))
    stack.wait_status(uuid, 3)
    ok(stack.operate("command", uuid, params={"command": "tail-marker"}))
    stack.wait_output(uuid, "got:tail-marker")
    text = ok(stack.operate("outputlog", uuid, params={"size": "20"}))
    assert len(text) <= 20
    assert text.endswith("got:tail-marker\n"), repr(text)
    ok(stack.operate("kill", uuid))
    stack.wait_status(uuid, 0)


def test_outputlog_content_type(stack):
    uuid = stack.create_instance()
    resp = stack.operate("outputlog", uuid)
    assert resp.status_code == 200
    assert resp.headers.get("Content-Type", "").startswith("text/plain")


def test_open_twice_refused(stack):
    uuid = stack.create_instance()
    ok(stack.operate("open", uuid))
    stack.wait_status(uuid, 3)
    assert_failure(stack.operate("open", uuid), 500,
                   "The instance is running and cannot be started again")
    ok(stack.operate("kill", uuid))
    stack.wait_status(uuid, 0)


def test_stop_when_stopped_refused(stack):
    uuid = stack.create_instance()
    assert_failure(stack.operate("stop", uuid), 500,
                   "Instance not running and cannot be stopped.")


def test_command_when_stopped_refused(stack):
    uuid = stack.create_instance()
    assert_failure(stack.operate("command", uuid, params={"command": "x"}),
                   500, "Command execution failed because the instance's "
                   "actual process does not exist")


def test_command_missing_parameter(stack):
    uuid = stack.create_instance()
    assert_failure(stack.operate("command", uuid), 400,
                   'Validator failed: "command" is required!')


def test_kill_when_stopped_succeeds(stack):
    uuid = stack.create_instance(nickname="k")
    assert_operation_shape(ok(stack.operate("kill", uuid)), uuid, "k")
    assert stack.instance(uuid)["status"] == 0


def test_kill_running(stack):
    uuid = stack.create_instance(nickname="k")
    ok(stack.operate("open", uuid))
    stack.wait_status(uuid, 3)
    pid = stack.find_process(ECHO_PATTERN)
    pgid = read_proc_stat(pid)[2]
    assert_operation_shape(ok(stack.operate("kill", uuid)), uuid, "k")
    stack.wait_status(uuid, 0)
    wait_for(lambda: not group_members(pgid), 10,
             what=f"process group {pgid} to end")


def test_restart_running(stack):
    uuid = stack.create_instance(nickname="r")
    ok(stack.operate("open", uuid))
    stack.wait_status(uuid, 3)
    first = stack.find_process(ECHO_PATTERN)
    assert_operation_shape(ok(stack.operate("restart", uuid)), uuid, "r")

    def restarted():
        detail = stack.instance(uuid)
        if detail["status"] != 3:
            return None
        pids = [p for p in [stack.find_process(ECHO_PATTERN)] if p != first]
        return pids or None
    wait_for(restarted, 20, interval=0.2,
             what="the instance to run again with a new process")
    ok(stack.operate("kill", uuid))
    stack.wait_status(uuid, 0)


def test_stop_leaves_no_process(stack):
    uuid = stack.create_instance()
    ok(stack.operate("open", uuid))
    stack.wait_status(uuid, 3)
    pid = stack.find_process(ECHO_PATTERN)
    pgid = read_proc_stat(pid)[2]
    ok(stack.operate("stop", uuid))
    stack.wait_status(uuid, 0)
    wait_for(lambda: not group_members(pgid), 10,
             what=f"process group {pgid} to end")


def test_detail_while_running(stack):
    uuid = stack.create_instance()
    ok(stack.operate("open", uuid))
    stack.wait_status(uuid, 3)
    detail = stack.instance(uuid)
    assert detail["started"] >= 1
    assert detail["processInfo"]["pid"] == stack.find_process(ECHO_PATTERN)
    ok(stack.operate("kill", uuid))
    stack.wait_status(uuid, 0)


@pytest.mark.parametrize("alias", ["remote_uuid", "daemon_id"])
def test_daemon_id_aliases(stack, alias):
    uuid = stack.create_instance()
    query = {"uuid": uuid, alias: stack.daemon_id}
    ok(stack.api.get("/api/protected_instance/open", key=stack.admin_key,
                     params=query))
    stack.wait_status(uuid, 3)
    ok(stack.api.get("/api/protected_instance/command", key=stack.admin_key,
                     params=dict(query, command="alias")))
    stack.wait_output(uuid, "got:alias")
    text = ok(stack.api.get("/api/protected_instance/outputlog",
                            key=stack.admin_key, params=query))
    assert "got:alias" in text
    ok(stack.api.get("/api/protected_instance/stop", key=stack.admin_key,
                     params=query))
    stack.wait_status(uuid, 0)


@pytest.mark.parametrize("key_in", ["query", "header", "bearer"])
def test_operations_with_each_key_carrier(stack, key_in):
    uuid = stack.create_instance()
    ok(stack.operate("open", uuid, key_in=key_in))
    stack.wait_status(uuid, 3)
    ok(stack.operate("command", uuid, key_in=key_in,
                     params={"command": key_in}))
    stack.wait_output(uuid, f"got:{key_in}")
    ok(stack.operate("stop", uuid, key_in=key_in))
    stack.wait_status(uuid, 0)


def test_missing_daemon_id(stack):
    uuid = stack.create_instance()
    resp = stack.api.get("/api/protected_instance/open",
                         key=stack.admin_key, params={"uuid": uuid})
    assert_failure(resp, 400, 'Validator failed: "daemonId" is required!')


def test_missing_uuid(stack):
    resp = stack.api.get("/api/protected_instance/open",
                         key=stack.admin_key,
                         params={"daemonId": stack.daemon_id})
    assert_failure(resp, 400, 'Validator failed: "uuid" is required!')


def test_anonymous_refused_by_ownership_check(stack):
    uuid = stack.create_instance()
    resp = stack.api.get("/api/protected_instance/open",
                         params={"uuid": uuid, "daemonId": stack.daemon_id})
    assert_failure(resp, 403, FORBIDDEN, explained=True)


def test_malformed_key_refused_by_ownership_check(stack):
    uuid = stack.create_instance()
    resp = stack.operate("open", uuid, key="bad!key")
    assert_failure(resp, 403, FORBIDDEN, secret="bad!key", explained=True)


# -------------------------------------------------------------- ownership

@pytest.fixture
def owned(stack):
    """user1 owns instance A; no user is granted instance B."""
    owned_uuid = stack.create_instance(nickname="echo-owned")
    other_uuid = stack.create_instance(nickname="echo-other")
    user_uuid = stack.create_user()
    stack.grant(user_uuid, [owned_uuid])
    user_key = stack.user_key()
    return owned_uuid, other_uuid, user_key


def test_user_operates_granted_instance(stack, owned):
    owned_uuid, _, user_key = owned
    ok(stack.operate("open", owned_uuid, key=user_key))
    stack.wait_status(owned_uuid, 3)
    ok(stack.operate("command", owned_uuid, key=user_key,
                     params={"command": "fromuser"}))
    stack.wait_output(owned_uuid, "got:fromuser")
    text = ok(stack.operate("outputlog", owned_uuid, key=user_key))
    assert "got:fromuser" in text
    ok(stack.operate("restart", owned_uuid, key=user_key))
    stack.wait_status(owned_uuid, 3)
    ok(stack.operate("stop", owned_uuid, key=user_key))
    stack.wait_status(owned_uuid, 0)


def test_user_reads_granted_detail(stack, owned):
    owned_uuid, _, user_key = owned
    detail = stack.instance(owned_uuid, key=user_key)
    assert detail["instanceUuid"] == owned_uuid


@pytest.mark.parametrize("action", ["open", "stop", "restart", "kill",
                                    "command", "outputlog"])
def test_user_refused_other_instance(stack, owned, action):
    _, other_uuid, user_key = owned
    resp = stack.operate(action, other_uuid, key=user_key,
                         params={"command": "x"})
    assert_failure(resp, 403, FORBIDDEN, secret=user_key, explained=True)
    assert stack.instance(other_uuid)["status"] == 0


def test_user_refused_wrong_daemon_id(stack, owned):
    owned_uuid, _, user_key = owned
    resp = stack.api.get("/api/protected_instance/open", key=user_key,
                         params={"uuid": owned_uuid, "daemonId": "f" * 32})
    assert_failure(resp, 403, FORBIDDEN, explained=True)


def test_user_refused_other_detail(stack, owned):
    _, other_uuid, user_key = owned
    resp = stack.api.get("/api/instance", key=user_key,
                         params={"uuid": other_uuid,
                                 "daemonId": stack.daemon_id})
    assert_failure(resp, 500, "Insufficient Permissions")


def test_user_cannot_create_instance(stack, owned):
    _, _, user_key = owned
    resp = stack.api.post("/api/instance", key=user_key,
                          params={"daemonId": stack.daemon_id},
                          json_body={"nickname": "mine"})
    assert_failure(resp, 403, "Incorrect key", secret=user_key,
                   explained=True)


def test_revoked_grant_refused(stack, owned):
    owned_uuid, _, user_key = owned
    user = ok(stack.api.get("/api/auth", key=user_key, xhr=True))
    stack.grant(user["uuid"], [])
    resp = stack.operate("open", owned_uuid, key=user_key)
    assert_failure(resp, 403, FORBIDDEN, explained=True)


def test_admin_unknown_instance(stack):
    missing = "0" * 32
    assert_failure(stack.operate("open", missing), 500,
                   "The target instance does not exist!")
    assert_failure(stack.operate("command", missing,
                                 params={"command": "x"}), 500,
                   f"The operation failed, the instance {missing} does "
                   f"not exist.")


def test_admin_unknown_daemon(stack):
    uuid = stack.create_instance()
    resp = stack.api.get("/api/protected_instance/open",
                         key=stack.admin_key,
                         params={"uuid": uuid, "daemonId": "f" * 32})
    assert_failure(resp, 500, "Initialization failed, the remote node does "
                   "not exist!")
    assert envelope(resp)["status"] == 500
