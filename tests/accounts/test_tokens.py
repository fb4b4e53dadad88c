"""Personal access tokens: made once and shown once, hashed at rest, capped by the owner's role,
ended by expiry, revocation or the owner's deactivation; and the provisioning CLI."""

import errno
import hashlib
import os
import pty
import select
import subprocess
import time

from sqlalchemy import event

from tests.conftest import BIN, PASSWORD, ROOT, client_with_token, http_client

from .conftest import is_signed_in, post_sign_in, run_cli


def make_token(caller, **fields):
    response = caller.post("/api/tokens", json={"name": "nightly sync", **fields})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def test_a_token_is_shown_once_and_only_its_sha256_is_kept(app, client_as, sql):
    editor = client_as("editor")

    made = make_token(editor, expires_days=30)

    secret = made["token"]
    assert secret.startswith("pit_") and made["prefix"] == secret[:12]
    assert (made["name"], made["role"], made["owner"]) == (
        "nightly sync",
        "editor",
        "editor@example.test",
    )
    assert made["expires_at"] is not None
    stored = sql("SELECT * FROM access_tokens WHERE id = :id", id=made["id"])[0]._asdict()
    assert stored["token_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in {str(value) for value in stored.values()}
    listed = editor.get("/api/tokens").get_json()["items"]
    assert [t["prefix"] for t in listed if t["id"] == made["id"]] == [secret[:12]]
    assert all("token" not in t for t in listed)  # never shown again
    acting = client_with_token(app, secret).get("/api/account").get_json()
    assert (acting["account"]["email"], acting["role"], acting["via"]) == (
        "editor@example.test",
        "editor",
        "token",
    )


def test_a_token_revoked_the_moment_it_is_made_is_answered_with_its_secret(app, client_as, sql):
    # A deactivation waiting for the account's row revokes the new token as soon as the request
    # that makes it commits; the answer, read back from the row after the commit, was a 500.
    from product_importer.extensions import db

    deactivated = []

    def deactivate_once_made(_session) -> None:
        if not deactivated and sql("SELECT id FROM access_tokens WHERE name = 'meanwhile'"):
            deactivated.append(sql("DELETE FROM access_tokens WHERE user_id = 3 RETURNING id"))
            sql("UPDATE users SET active = false WHERE id = 3")

    event.listen(db.session, "after_commit", deactivate_once_made)
    try:
        made = client_as("viewer").post("/api/tokens", json={"name": "meanwhile"})
    finally:
        event.remove(db.session, "after_commit", deactivate_once_made)

    assert deactivated, "the token was never made"
    assert made.status_code == 201, made.get_data(as_text=True)
    assert made.get_json()["name"] == "meanwhile"
    assert made.get_json()["token"].startswith("pit_")
    assert client_with_token(app, made.get_json()["token"]).get("/api/account").status_code == 401


def test_a_token_role_is_at_most_the_owner_role(client_as, app):
    editor = client_as("editor")

    response = editor.post("/api/tokens", json={"name": "too much", "role": "admin"})

    assert response.status_code == 422
    assert response.get_json()["error"]["details"]["role"] == (
        "At most editor, the role of editor@example.test."
    )
    read_only = make_token(editor, role="viewer")["token"]
    refused = client_with_token(app, read_only).post(
        "/api/products", json={"sku": "A", "name": "B"}
    )
    assert refused.status_code == 403


def test_an_expired_token_is_refused(app, client_as, sql):
    secret = make_token(client_as("viewer"), expires_days=1)["token"]
    token = client_with_token(app, secret)
    assert token.get("/api/products").status_code == 200

    sql("UPDATE access_tokens SET expires_at = now() - interval '1 s' WHERE name = 'nightly sync'")

    response = token.get("/api/products")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "not valid" in response.get_json()["error"]["message"]


def test_a_revoked_token_stops_at_once(app, client_as):
    viewer = client_as("viewer")
    made = make_token(viewer)
    token = client_with_token(app, made["token"])
    assert token.get("/api/products").status_code == 200

    assert viewer.delete(f"/api/tokens/{made['id']}").status_code == 204

    assert token.get("/api/products").status_code == 401
    assert made["id"] not in [t["id"] for t in viewer.get("/api/tokens").get_json()["items"]]


def test_only_admins_see_and_revoke_the_tokens_of_others(client_as):
    editor_token = make_token(client_as("editor"))
    viewer = client_as("viewer")

    assert {t["owner"] for t in viewer.get("/api/tokens").get_json()["items"]} == {
        "viewer@example.test"
    }
    assert viewer.delete(f"/api/tokens/{editor_token['id']}").status_code == 404
    admin = client_as("admin")
    owners = {t["owner"] for t in admin.get("/api/tokens").get_json()["items"]}
    assert owners == {"admin@example.test", "editor@example.test", "viewer@example.test"}
    assert admin.delete(f"/api/tokens/{editor_token['id']}").status_code == 204


def test_deactivating_an_account_stops_its_tokens_and_sessions_at_once(
    client, client_as, live_server, browsers, accounts
):
    session = browsers(accounts["editor"].email)
    token = client_as("editor")
    assert token.get("/api/products").status_code == 200

    assert client.patch("/api/users/2", json={"active": False}).get_json()["active"] is False

    assert token.get("/api/products").status_code == 401
    assert session.get("/api/products").status_code == 401
    assert not is_signed_in(session)
    # Active again, it signs in anew; the old session stays ended, the old token revoked.
    assert client.patch("/api/users/2", json={"active": True}).status_code == 200
    assert token.get("/api/products").status_code == 401
    assert not is_signed_in(session)


def test_demoting_the_owner_caps_what_its_tokens_may_do(client, client_as, browsers, accounts):
    made = make_token(client_as("editor"))  # with the editor role, as its owner has
    editor_session = browsers(accounts["editor"].email)
    token = client_with_token(client.application, made["token"])
    assert token.post("/api/products", json={"sku": "A-1", "name": "A"}).status_code == 201

    assert client.patch("/api/users/2", json={"role": "viewer"}).status_code == 200

    refused = token.post("/api/products", json={"sku": "A-2", "name": "A"})
    assert refused.status_code == 403
    assert "needs the editor role" in refused.get_json()["error"]["message"]
    assert token.get("/api/account").get_json()["role"] == "viewer"
    assert editor_session.post("/api/products", json={"sku": "A-3", "name": "A"}).status_code == 403


def test_a_token_made_below_its_owners_role_is_refused_naming_the_tokens_role(
    live_server, accounts
):
    with http_client(live_server, accounts["editor"].token) as editor:
        made = editor.post("/api/tokens", json={"name": "child", "role": "viewer"}).json()
    with http_client(live_server, made["token"]) as child:
        upload = child.post("/api/uploads", headers={"Tus-Resumable": "1.0.0"})
        delete_all = child.delete("/api/products")
    with http_client(live_server, accounts["viewer"].token) as viewer:
        viewers_upload = viewer.post("/api/uploads", headers={"Tus-Resumable": "1.0.0"})

    assert upload.status_code == 403
    assert upload.json()["error"]["message"] == (
        "This needs the editor role; this token acts as viewer (its account "
        "editor@example.test is editor). Use a token made with the editor role."
    )
    assert upload.json()["error"]["details"] == {"required_role": "editor", "role": "viewer"}
    # beyond what its account may do, the account's role is what to raise
    assert delete_all.status_code == 403
    assert delete_all.json()["error"]["message"] == (
        "This needs the admin role; your account (editor@example.test) is editor. Ask an admin."
    )
    # a token of its account's role: the account's role is what to raise, as for a session
    assert viewers_upload.json()["error"]["message"] == (
        "This needs the editor role; your account (viewer@example.test) is viewer. Ask an admin."
    )


def test_a_demoted_owners_token_is_listed_with_the_role_it_acts_with(client, client_as):
    made = make_token(client_as("editor"))
    assert client.patch("/api/users/2", json={"role": "viewer"}).status_code == 200

    as_admin = {t["id"]: t for t in client.get("/api/tokens").get_json()["items"]}
    as_owner = {t["id"]: t for t in client_as("editor").get("/api/tokens").get_json()["items"]}

    for listed in (as_admin[made["id"]], as_owner[made["id"]]):
        assert (listed["role"], listed["made_as"]) == ("viewer", "editor")
    assert client.patch("/api/users/2", json={"role": "editor"}).status_code == 200
    again = {t["id"]: t for t in client.get("/api/tokens").get_json()["items"]}
    assert (again[made["id"]]["role"], again[made["id"]]["made_as"]) == ("editor", "editor")


def test_an_admin_cannot_demote_or_deactivate_itself(client):
    assert client.patch("/api/users/1", json={"role": "editor"}).status_code == 409
    assert client.patch("/api/users/1", json={"active": False}).status_code == 409
    assert client.get("/api/account").get_json()["account"]["role"] == "admin"


def test_the_cli_creates_accounts_and_prints_a_token_alone(app):
    created = run_cli(
        "users", "create", "ops@example.test", "--role", "editor", "--password-stdin",
        stdin="an operator password\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert created.stdout == ""
    assert "Password for" not in created.stderr  # piped: nothing asked

    made = run_cli("tokens", "create", "OPS@example.test", "--name", "ERP", "--role", "viewer")

    assert made.returncode == 0, made.stderr
    secret = made.stdout.removesuffix("\n")
    assert secret.startswith("pit_") and "\n" not in secret
    acting = client_with_token(app, secret).get("/api/account").get_json()
    assert (acting["account"]["email"], acting["role"]) == ("ops@example.test", "viewer")
    browser = app.test_client()
    assert post_sign_in(browser, "ops@example.test", "an operator password").status_code == 302
    assert post_sign_in(app.test_client(), "ops@example.test", PASSWORD).status_code == 401


class Terminal:
    """`product-importer ARGS` run in a terminal of its own (a pty), as a person runs it."""

    def __init__(self, *args: str):
        self.text = ""
        self.screen, tty = pty.openpty()
        # A session of its own, without the tests' terminal: getpass uses this one.
        command = [str(BIN / "product-importer"), *args]
        self.process = subprocess.Popen(
            command, stdin=tty, stdout=tty, stderr=tty, cwd=ROOT, start_new_session=True
        )
        os.close(tty)

    def wait_for(self, needle: str, timeout: float = 120) -> None:
        """Read what the command writes until `needle` is on the screen."""
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            if not self._read(deadline - time.monotonic()):
                raise AssertionError(f"{needle!r} never shown; the screen:\n{self.text}")

    def type(self, line: str) -> None:
        os.write(self.screen, f"{line}\r".encode())  # Enter

    def finish(self, timeout: float = 120) -> int:
        """Read the screen to the command's end; return its exit status."""
        deadline = time.monotonic() + timeout
        while self._read(deadline - time.monotonic()):
            pass
        return self.process.wait(timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.screen)

    def _read(self, seconds: float) -> bool:
        """Add what the command writes within `seconds` to the screen; False once it ended."""
        if seconds <= 0 or not select.select([self.screen], [], [], seconds)[0]:
            return False
        try:
            written = os.read(self.screen, 4096)
        except OSError as error:  # the command ended: its terminal is closed
            if error.errno != errno.EIO:
                raise
            return False
        self.text += written.decode(errors="replace")
        return bool(written)


def test_the_cli_asks_for_the_password_in_a_terminal_and_does_not_show_it(app):
    # In a terminal, `--password-stdin` waited for a line without a word.
    terminal = Terminal(
        "users", "create", "ops@example.test", "--role", "editor", "--password-stdin"
    )
    try:
        terminal.wait_for("Password for ops@example.test (at least 10 characters): ")
        terminal.type("an operator password")
        terminal.wait_for("Repeat for confirmation: ")
        terminal.type("an operator password")
        assert terminal.finish() == 0, terminal.text
    finally:
        terminal.close()

    assert "Created ops@example.test (editor)." in terminal.text
    assert "an operator password" not in terminal.text  # typed unseen
    browser = app.test_client()
    assert post_sign_in(browser, "ops@example.test", "an operator password").status_code == 302


def test_the_cli_refuses_an_empty_password_from_stdin_rather_than_make_one_no_one_sees(client):
    # `... --password-stdin < /dev/null`, or a variable that was empty: a random password no
    # one was shown would lock the account's owner out from the start.
    for stdin in ("", "\n"):
        made = run_cli(
            "users", "create", "ops@example.test", "--role", "admin", "--password-stdin",
            stdin=stdin,
        )  # fmt: skip
        assert made.returncode != 0, made.stderr
        assert "password: Use at least 10 characters." in made.stderr
    emails = [user["email"] for user in client.get("/api/users").get_json()["items"]]
    assert "ops@example.test" not in emails


def test_the_accounts_and_tokens_the_cli_makes_are_in_the_audit_log(client):
    assert run_cli("users", "create", "ops@example.test", "--role", "editor").returncode == 0
    assert run_cli("tokens", "create", "ops@example.test", "--name", "ERP").returncode == 0

    log = client.get("/api/audit").get_json()["items"][::-1]

    assert [(e["actor"], e["action"], e["target"], e["details"]) for e in log] == [
        (None, "user.created", "ops@example.test", {"role": "editor", "via": "cli"}),
        (
            None,
            "token.created",
            "ERP",
            {"role": "editor", "owner": "ops@example.test", "via": "cli"},
        ),
    ]


def test_the_cli_shows_the_new_password_once_and_refuses_what_it_cannot_do(app):
    created = run_cli("users", "create", "new@example.test", "--role", "viewer")
    assert created.returncode == 0 and created.stdout == ""
    # It was called "one-time", yet it works until changed: an admin could take it for spent.
    said = "Password (shown only once; it works until changed on the account page): "
    password = created.stderr.split(said)[1].strip()
    for _sign_in in (1, 2):
        assert post_sign_in(app.test_client(), "new@example.test", password).status_code == 302

    again = run_cli("users", "create", "NEW@example.test", "--role", "viewer")
    assert again.returncode != 0 and "already exists" in again.stderr
    nobody = run_cli("tokens", "create", "nobody@example.test", "--name", "x")
    assert nobody.returncode != 0 and nobody.stdout == ""
    # `users create` alone was refused for its missing --role: the whole command is given.
    said = "product-importer users create nobody@example.test --role viewer|editor|admin"
    assert said in nobody.stderr
    too_high = run_cli("tokens", "create", "new@example.test", "--name", "x", "--role", "admin")
    assert too_high.returncode != 0 and too_high.stdout == ""
    assert "At most viewer" in too_high.stderr
    assert "Context impl" not in created.stderr + again.stderr  # no alembic preamble
    for refused in (again, too_high):  # what was wrong, as a person reads it
        assert "{'" not in refused.stderr and "see details" not in refused.stderr, refused.stderr
    assert (
        "Error: An account with email 'NEW@example.test' already exists. email: Already taken."
        in again.stderr
    )
    assert (
        "Error: The token is not valid. role: At most viewer, the role of new@example.test."
        in too_high.stderr
    )


def test_a_token_used_only_to_read_shows_when_it_was_last_used(client_as, client):
    def last_used() -> str | None:
        tokens = client.get("/api/tokens").get_json()["items"]
        return next(t["last_used_at"] for t in tokens if t["owner"] == "viewer@example.test")

    assert last_used() is None

    assert client_as("viewer").get("/api/products").status_code == 200

    assert last_used() is not None


def test_a_token_of_a_lower_role_than_its_owner_gains_no_more_through_the_tokens_api(
    client_as, app
):
    admin = client_as("admin")
    editor_token = make_token(client_as("editor"))
    read_only = client_with_token(app, make_token(admin, role="viewer")["token"])

    made = make_token(read_only)  # no role asked for: the one this token acts with
    stronger = read_only.post("/api/tokens", json={"name": "stronger", "role": "admin"})

    assert made["role"] == "viewer"
    assert stronger.status_code == 422
    assert stronger.get_json()["error"]["details"]["role"] == (
        "At most viewer, the role this request acts with."
    )
    listed = read_only.get("/api/tokens").get_json()["items"]
    assert {t["owner"] for t in listed} == {"admin@example.test"}  # its owner's own, as a viewer
    assert read_only.delete(f"/api/tokens/{editor_token['id']}").status_code == 404
    assert admin.delete(f"/api/tokens/{editor_token['id']}").status_code == 204
