"""API keys: the three ways to send one, and every way to be refused."""

import pytest

from conftest import ADMIN_NAME, USER_NAME, assert_failure, ok

INCORRECT_KEY = "Incorrect key"
KEYS_OFF = "API key creation feature is not enabled"
INSUFFICIENT = "Insufficient Permissions"
NOT_FOUND = "[404] Not Found"

KEY_CARRIERS = ["query", "header", "bearer"]


@pytest.mark.parametrize("key_in", KEY_CARRIERS)
def test_key_reads_user_info(stack, key_in):
    data = ok(stack.api.get("/api/auth", key=stack.admin_key, key_in=key_in,
                            xhr=True))
    assert data["userName"] == ADMIN_NAME
    assert data["permission"] == 10
    assert data["apiKey"] == "__MCSM_SECRET_DATA__"
    assert data["token"] == ""


@pytest.mark.parametrize("key_in", KEY_CARRIERS)
def test_key_lists_nodes(stack, key_in):
    nodes = ok(stack.api.get("/api/service/remote_services_list",
                             key=stack.admin_key, key_in=key_in))
    assert [node["uuid"] for node in nodes] == [stack.daemon_id]


@pytest.mark.parametrize("key_in", ["query", "header"])
def test_user_info_needs_ajax_header(stack, key_in):
    # MCSManager fills GET /api/auth only for XHR requests; a key request
    # without the header gets the 404 envelope.
    resp = stack.api.get("/api/auth", key=stack.admin_key, key_in=key_in)
    assert_failure(resp, 404, NOT_FOUND)


def test_ajax_header_value_case_insensitive(stack):
    data = ok(stack.api.get("/api/auth", key=stack.admin_key,
                            headers={"x-requested-with": "xmlhttprequest"}))
    assert data["userName"] == ADMIN_NAME


@pytest.mark.parametrize("key_in", KEY_CARRIERS)
@pytest.mark.parametrize("bad_key", ["abc.def", "abc$%def", "bad!key"])
def test_malformed_key_rejected(stack, key_in, bad_key):
    resp = stack.api.get("/api/auth", key=bad_key, key_in=key_in, xhr=True)
    assert_failure(resp, 403, INCORRECT_KEY, secret=bad_key, explained=True)


@pytest.mark.parametrize("key_in", KEY_CARRIERS)
def test_unknown_key_rejected(stack, key_in):
    unknown = "0123456789abcdef0123456789abcdef"
    resp = stack.api.get("/api/auth", key=unknown, key_in=key_in, xhr=True)
    assert_failure(resp, 403, INCORRECT_KEY, secret=unknown, explained=True)


def test_empty_key_is_anonymous(stack):
    resp = stack.api.get("/api/auth", key="", xhr=True)
    assert_failure(resp, 403, INSUFFICIENT, explained=True)


def test_no_credentials_rejected(stack):
    resp = stack.api.get("/api/overview")
    assert_failure(resp, 403, INSUFFICIENT, explained=True)


@pytest.mark.parametrize("key_in", KEY_CARRIERS)
def test_user_key_below_route_level(stack, key_in):
    stack.create_user()
    user_key = stack.user_key()
    resp = stack.api.get("/api/auth/search", key=user_key, key_in=key_in,
                         params={"page": 1, "page_size": 10})
    assert_failure(resp, 403, INCORRECT_KEY, secret=user_key,
                   explained=True)


def test_user_key_reads_own_info(stack):
    user_uuid = stack.create_user()
    user_key = stack.user_key()
    data = ok(stack.api.get("/api/auth", key=user_key, xhr=True))
    assert data["uuid"] == user_uuid
    assert data["userName"] == USER_NAME


def test_user_key_on_overview_rejected(stack):
    stack.create_user()
    user_key = stack.user_key()
    resp = stack.api.get("/api/overview", key=user_key)
    assert_failure(resp, 403, INCORRECT_KEY, secret=user_key,
                   explained=True)


@pytest.mark.parametrize("key_in", KEY_CARRIERS)
def test_disabled_keys_reject_valid_key(stack, key_in):
    stack.set_api_keys(False)
    resp = stack.api.get("/api/auth", key=stack.admin_key, key_in=key_in,
                         xhr=True)
    assert_failure(resp, 403, KEYS_OFF, secret=stack.admin_key,
                   explained=True)


def test_disabled_keys_reject_malformed_key(stack):
    stack.set_api_keys(False)
    resp = stack.api.get("/api/auth", key="bad.key", xhr=True)
    assert_failure(resp, 403, KEYS_OFF, secret="bad.key", explained=True)


def test_reenabled_keys_work_again(stack):
    stack.set_api_keys(False)
    stack.set_api_keys(True)
    data = ok(stack.api.get("/api/auth", key=stack.admin_key, xhr=True))
    assert data["userName"] == ADMIN_NAME


def test_key_creation_refused_when_disabled(stack):
    stack.set_api_keys(False)
    resp = stack.api.put("/api/auth/api", session=stack.admin_session,
                         token=stack.admin_token, xhr=True,
                         json_body={"enable": True})
    assert resp.status_code >= 400


def test_only_admin_rejects_user_key(stack):
    stack.create_user()
    user_key = stack.user_key()
    stack.set_api_keys("ONLY_ADMIN")
    resp = stack.api.get("/api/auth", key=user_key, xhr=True)
    assert_failure(resp, 403, KEYS_OFF, secret=user_key, explained=True)


def test_only_admin_accepts_admin_key(stack):
    stack.set_api_keys("ONLY_ADMIN")
    data = ok(stack.api.get("/api/auth", key=stack.admin_key, xhr=True))
    assert data["userName"] == ADMIN_NAME


def test_regenerated_key_replaces_old(stack):
    old_key = stack.admin_key
    new_key = stack.create_key(stack.admin_session, stack.admin_token)
    assert new_key != old_key
    resp = stack.api.get("/api/auth", key=old_key, xhr=True)
    assert_failure(resp, 403, INCORRECT_KEY, secret=old_key, explained=True)
    data = ok(stack.api.get("/api/auth", key=new_key, xhr=True))
    assert data["userName"] == ADMIN_NAME


def test_disabled_user_key_rejected(stack):
    key = stack.admin_key
    assert ok(stack.api.put("/api/auth/api", session=stack.admin_session,
                            token=stack.admin_token, xhr=True,
                            json_body={"enable": False})) == ""
    resp = stack.api.get("/api/auth", key=key, xhr=True)
    assert_failure(resp, 403, INCORRECT_KEY, secret=key, explained=True)


def test_key_requests_never_rate_limited(stack):
    codes = [stack.api.get("/api/auth/status", key=stack.admin_key)
             .status_code for _ in range(12)]
    assert codes == [200] * 12


def test_common_headers(stack):
    resp = stack.api.get("/api/service/remote_services_list",
                         key=stack.admin_key)
    assert resp.headers.get("X-Powered-By") == "MCSManager"
    assert resp.headers.get("X-Version") == "10.18.2"
    assert resp.headers.get("Content-Type", "").startswith(
        "application/json")


def test_text_answers_are_plain_text(stack):
    resp = stack.api.get("/api/overview")
    assert resp.headers.get("Content-Type", "").startswith("text/plain")


def test_unknown_route(stack):
    resp = stack.api.get("/api/nope", key=stack.admin_key)
    assert_failure(resp, 404, NOT_FOUND)
