"""First-run install, password login, session token and session checks."""

import re

import requests

from conftest import (ADMIN_NAME, ADMIN_PASSWORD, USER_NAME, USER_PASSWORD,
                      assert_failure, envelope, ok)

NOT_AJAX = "The request is not an Ajax request."
NO_XHR = ("Unable to find the request header: "
          "x-requested-with: xmlhttprequest")
BAD_TOKEN = "Token validation failed, access denied"
INSUFFICIENT = "Insufficient Permissions"


def test_status_before_install(bare_stack):
    data = ok(bare_stack.api.get("/api/auth/status"))
    assert data["isInstall"] is False


def test_install_creates_admin(bare_stack):
    api = bare_stack.api
    session = requests.Session()
    data = ok(api.post("/api/auth/install", session=session,
                       json_body={"username": ADMIN_NAME,
                                  "password": ADMIN_PASSWORD}))
    assert data is True
    status = ok(api.get("/api/auth/status"))
    assert status["isInstall"] is True
    # The install logged this cookie jar in: it can fetch its token.
    token = ok(api.get("/api/auth/token", session=session, xhr=True))
    assert isinstance(token, str)
    assert len(token) > 0


def test_install_twice_rejected(bare_stack):
    bare_stack.install()
    resp = bare_stack.api.post("/api/auth/install",
                               json_body={"username": "admin2",
                                          "password": ADMIN_PASSWORD})
    assert_failure(resp, 400, "Admin account has already been created and "
                   "cannot be recreated")


def test_install_weak_password_rejected(bare_stack):
    resp = bare_stack.api.post("/api/auth/install",
                               json_body={"username": ADMIN_NAME,
                                          "password": "short"})
    assert resp.status_code == 400
    assert envelope(resp)["status"] == 400
    status = ok(bare_stack.api.get("/api/auth/status"))
    assert status["isInstall"] is False


def test_token_requires_ajax_header(bare_stack):
    bare_stack.install()
    resp = bare_stack.api.get("/api/auth/token",
                              session=bare_stack.admin_session)
    assert_failure(resp, 500, NOT_AJAX, explained=True)


def test_login_returns_token(bare_stack):
    bare_stack.install()
    session = requests.Session()
    token = ok(bare_stack.api.post("/api/auth/login", session=session,
                                   json_body={"username": ADMIN_NAME,
                                              "password": ADMIN_PASSWORD}))
    # MCSManager's token: 32 hex characters and a 13-digit ms timestamp.
    assert re.fullmatch(r"[0-9a-f]{32}[0-9]{13}", token), token
    again = ok(bare_stack.api.get("/api/auth/token", session=session,
                                  xhr=True))
    assert again == token


def test_login_wrong_password(bare_stack):
    bare_stack.install()
    resp = bare_stack.api.post("/api/auth/login",
                               json_body={"username": ADMIN_NAME,
                                          "password": "WrongPass123"})
    assert_failure(resp, 500, "Incorrect account or password",
                   explained=True)


def test_login_unknown_user(bare_stack):
    bare_stack.install()
    resp = bare_stack.api.post("/api/auth/login",
                               json_body={"username": "nobody",
                                          "password": "WrongPass123"})
    assert_failure(resp, 500, "Incorrect Username or Password",
                   explained=True)


def test_login_missing_password(bare_stack):
    bare_stack.install()
    resp = bare_stack.api.post("/api/auth/login",
                               json_body={"username": ADMIN_NAME})
    assert_failure(resp, 400, 'Validator failed: "password" is required!')


def test_session_reads_settings(bare_stack):
    token = bare_stack.install()
    data = ok(bare_stack.api.get("/api/overview/setting",
                                 session=bare_stack.admin_session,
                                 token=token, xhr=True))
    assert data["enableApiKey"] is False


def test_session_without_ajax_header(bare_stack):
    token = bare_stack.install()
    resp = bare_stack.api.get("/api/overview/setting",
                              session=bare_stack.admin_session, token=token)
    assert_failure(resp, 403, NO_XHR, explained=True)


def test_session_wrong_token(bare_stack):
    bare_stack.install()
    resp = bare_stack.api.get("/api/overview/setting",
                              session=bare_stack.admin_session,
                              token="wrong", xhr=True)
    assert_failure(resp, 403, BAD_TOKEN, explained=True)


def test_session_missing_token(bare_stack):
    bare_stack.install()
    resp = bare_stack.api.get("/api/overview/setting",
                              session=bare_stack.admin_session, xhr=True)
    assert_failure(resp, 403, BAD_TOKEN, explained=True)


def test_token_of_other_session_rejected(bare_stack):
    bare_stack.install()
    _, other_token = bare_stack.login(ADMIN_NAME, ADMIN_PASSWORD)
    resp = bare_stack.api.get("/api/overview/setting",
                              session=bare_stack.admin_session,
                              token=other_token, xhr=True)
    assert_failure(resp, 403, BAD_TOKEN, explained=True)


def test_token_without_session_rejected(bare_stack):
    bare_stack.install()
    resp = bare_stack.api.get("/api/overview/setting",
                              token=bare_stack.admin_token, xhr=True)
    assert_failure(resp, 403, BAD_TOKEN, explained=True)


def test_anonymous_rejected(bare_stack):
    bare_stack.install()
    resp = bare_stack.api.get("/api/overview/setting", xhr=True)
    assert_failure(resp, 403, INSUFFICIENT, explained=True)


def test_user_info_echoes_token(bare_stack):
    token = bare_stack.install()
    data = ok(bare_stack.api.get("/api/auth",
                                 session=bare_stack.admin_session,
                                 token=token, xhr=True))
    assert data["userName"] == ADMIN_NAME
    assert data["permission"] == 10
    assert data["token"] == token


def test_overview_needs_no_token(bare_stack):
    bare_stack.install()
    data = ok(bare_stack.api.get("/api/overview",
                                 session=bare_stack.admin_session))
    assert "version" in data


def test_logout_ends_session(bare_stack):
    token = bare_stack.install()
    session = bare_stack.admin_session
    assert ok(bare_stack.api.get("/api/auth/logout", session=session)) is True
    resp = bare_stack.api.get("/api/overview/setting", session=session,
                              token=token, xhr=True)
    assert resp.status_code == 403


def test_create_user_and_login(stack):
    user_uuid = stack.create_user()
    assert re.fullmatch(r"[0-9a-f]{32}", user_uuid), user_uuid
    session, token = stack.login(USER_NAME, USER_PASSWORD)
    data = ok(stack.api.get("/api/auth", session=session, token=token,
                            xhr=True))
    assert data["uuid"] == user_uuid
    assert data["permission"] == 1


def test_create_user_twice_rejected(stack):
    stack.create_user()
    resp = stack.api.post("/api/auth", key=stack.admin_key,
                          json_body={"username": USER_NAME,
                                     "password": USER_PASSWORD,
                                     "permission": 1})
    assert_failure(resp, 400, "Username is already in use")


def test_create_user_weak_password(stack):
    resp = stack.api.post("/api/auth", key=stack.admin_key,
                          json_body={"username": "user2",
                                     "password": "short",
                                     "permission": 1})
    assert_failure(resp, 400, "Invalid Password Format")


def test_user_search_masks_secrets(stack):
    stack.create_user()
    stack.user_key()
    data = ok(stack.api.get("/api/auth/search", key=stack.admin_key,
                            params={"userName": "", "page": 1,
                                    "page_size": 20}))
    assert data["total"] == 2
    for user in data["data"]:
        assert user["passWord"] == "", user
        assert user["apiKey"] == "__MCSM_SECRET_DATA__", user


def test_ordinary_session_cannot_read_settings(stack):
    stack.create_user()
    session, token = stack.login(USER_NAME, USER_PASSWORD)
    resp = stack.api.get("/api/overview/setting", session=session,
                         token=token, xhr=True)
    assert_failure(resp, 403, INSUFFICIENT, explained=True)


def test_login_ban_after_failures(bare_stack):
    bare_stack.install()
    codes = []
    for _ in range(11):
        resp = bare_stack.api.post("/api/auth/login",
                                   json_body={"username": ADMIN_NAME,
                                              "password": "WrongPass123"})
        codes.append(resp.status_code)
    assert codes == [500] * 11
    # The 12th attempt is refused even with the right password.
    resp = bare_stack.api.post("/api/auth/login",
                               json_body={"username": ADMIN_NAME,
                                          "password": ADMIN_PASSWORD})
    assert_failure(resp, 400, "Too many failed attempts! Your IP address, "
                   "as a result, has been banned for 10 minutes.")


def test_anonymous_before_install_points_to_install(bare_stack):
    resp = bare_stack.api.get("/api/overview/setting", xhr=True)
    assert_failure(resp, 403, INSUFFICIENT, explained=True)
    assert "POST /api/auth/install" in envelope(resp)["data"]


def test_anonymous_after_install_no_install_hint(bare_stack):
    bare_stack.install()
    resp = bare_stack.api.get("/api/overview/setting", xhr=True)
    assert "/api/auth/install" not in envelope(resp)["data"]


def test_session_rate_limit_explained(bare_stack):
    token = bare_stack.install()
    session = bare_stack.admin_session
    # GET /api/instance is a user-level route, so sessions get 8 requests
    # per rolling second on it; the ninth within the second is refused.
    answers = []
    for _ in range(12):
        resp = bare_stack.api.get("/api/instance", session=session,
                                  token=token, xhr=True,
                                  params={"daemonId": "x", "uuid": "y"})
        answers.append(envelope(resp)["data"])
    # The first requests pass the limiter and fail on the unknown node.
    assert answers[0].startswith("Initialization failed")
    assert_failure(resp, 500, "Too many requests, please try again later",
                   explained=True)
    assert "API key" in envelope(resp)["data"]
