"""Accounts and access against a model: accounts, roles, sign-ins and tokens changed at random,
and every answer checked against what SPEC's "Accounts and access" and "Hardening" say.

A hypothesis state machine adds accounts, changes their roles, deactivates and reactivates
them, signs people in (right and wrong passwords, from a few addresses, in any case) and out,
changes and resets passwords, makes tokens (also through tokens of a lower role than their
owner's), lets them expire and revokes them, and sends cross-site, wrong-Host and oversized
requests. The model says who each actor (a browser session, a token, nobody) is now and with
which role it acts; from that and the roles table, every API route and page must answer 401
(with a Bearer challenge), 403 `forbidden` or let the request through. Every answer is checked
for the security headers and for secrets it must not show; after every step the accounts, the
tokens and the audit log (read back page by page) must be what the model expects. Each run
starts from the three standard accounts, a browser signed in as each, viewer tokens of the
admin and the editor, and 120 audit entries (more than two pages).

Derandomized (the same examples on every run) and without shrinking, to keep to a minute: a
failure prints its whole run of steps. At that size the random runs may miss a short sequence
that matters (a reactivation after a deactivation, a lesser token asking for a token, a token
made with a token revoked with it, sign-ins past the limit), so a few such scripts also run
through the same model and checks every time.
"""

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import redis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import text

from product_importer.accounts.tries import ACCOUNT_SCOPE, account_key
from tests.conftest import PASSWORD, REDIS_URL, empty_tables

from .conftest import CSRF_META, clear_sign_in_limits, form_token
from .test_access import RANK, api_routes, needed_role

ADDRESS = "203.0.113.9"  # every request but the sign-ins comes from here
SIGN_IN_ADDRESSES = ("192.0.2.1", "192.0.2.2", "192.0.2.3")
UNKNOWN_EMAIL = "nobody@example.test"
ROLES = ("viewer", "editor", "admin")
LIMIT = 10  # failed sign-ins a minute, per account and per address
MIB = 1024 * 1024
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
# Ids no object has: an allowed request then answers 404 (or 400/422), never 401 or 403.
SAMPLE_VALUES = {"filename": "app.css", "upload_id": "no-such-upload"}
PAGES = {"/": "viewer", "/imports": "viewer", "/products": "viewer", "/webhooks": "viewer"}
PAGES |= {"/imports/999999": "viewer", "/account": "viewer", "/users": "admin", "/audit": "admin"}
# JSON routes and the role each needs (the body is read only once the caller may send it).
JSON_ROUTES = {"/api/products": "editor", "/api/webhooks": "admin", "/api/users": "admin"}
JSON_ROUTES |= {"/api/tokens": "viewer", "/api/account/password": "viewer"}
CROSS_SITE = [{"Origin": "null"}, {"Origin": "https://evil.example"}]
CROSS_SITE += [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}]
SEEDED_AUDIT = 120  # entries the log starts with: more than two pages of 50
AUDIT_ACTIONS = ("auth.signed_in", "auth.sign_in_failed", "auth.signed_out", "user.created")
AUDIT_ACTIONS += ("user.changed", "user.password_reset", "token.created", "token.revoked")
AUDIT_ACTIONS += ("account.password_changed", "auth.", "user.", "token.", "account.")


def sample_path(rule: str) -> str:
    """A URL of the rule whose ids no object has (a static file that exists)."""
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: SAMPLE_VALUES.get(m.group(1), "999999"), rule)


def lower_role(first: str, second: str) -> str:
    """The lesser of two roles."""
    return min(first, second, key=RANK.__getitem__)


@dataclass
class Account:
    id: int
    email: str
    role: str
    password: str
    active: bool = True


@dataclass
class Token:
    id: int
    secret: str
    owner: int
    role: str
    name: str
    expired: bool = False
    revoked: bool = False
    made_by: int | None = None  # the token it was made with: revoked, it is revoked too
    expires_at: datetime | None = None  # as made: the tokens it makes expire no later


@dataclass(repr=False)
class Actor:
    """Who sends a request: a signed-in browser, a bearer token, or nobody."""

    kind: str  # "session", "token" or "nobody"
    client: object
    account: int | None = None
    token: int | None = None
    alive: bool = True  # a session: not signed out nor ended
    csrf: str = ""

    def __repr__(self) -> str:  # what a failing example prints
        return f"Actor({self.kind}, account={self.account}, token={self.token})"


@dataclass
class Expected:
    """An audit entry the model expects: who, what, on what, from where."""

    actor: str | None
    action: str
    target: str | None
    address: str = ADDRESS


@dataclass
class Model:
    accounts: dict[int, Account] = field(default_factory=dict)
    tokens: dict[int, Token] = field(default_factory=dict)
    audit: list[Expected] = field(default_factory=list)
    failed: dict[tuple, int] = field(default_factory=dict)  # (key, limit) -> failed sign-ins
    refusals_audited: set[tuple] = field(default_factory=set)  # (key, limit): this minute
    secrets: set[str] = field(default_factory=set)  # never in an answer but where made


class AccessMachine(RuleBasedStateMachine):
    """Accounts, sessions and tokens against the model; `app` and `env` set by the test."""

    app = None
    env: dict = {}

    def __init__(self):
        super().__init__()
        self.reset_database()
        self.model = Model()
        self.actors: list[Actor] = [Actor("nobody", self.new_client())]
        for number, role in enumerate(ROLES[::-1], start=1):  # ids 1, 2, 3: admin, editor, viewer
            email, secret = self.env["accounts"][role].email, self.env["accounts"][role].token
            self.model.accounts[number] = Account(number, email, role, PASSWORD)
            self.model.tokens[number] = Token(number, secret, number, role, "tests")
            self.actors.append(self.token_actor(self.model.tokens[number]))
        self.actors.append(self.token_actor(Token(0, "pit_never-made", 1, "admin", "fake")))
        self.observer = self.actors[1]  # the admin's token: never revoked, its account kept
        self.seed_audit_log()
        self.made_webhook()
        for number in (1, 2, 3):  # a browser of each: sessions from the first step
            self.sign_in_as(self.model.accounts[number], SIGN_IN_ADDRESSES[0])
        for number in (1, 2):  # and viewer tokens of the admin and the editor
            self.make_token_as(self.actors[number], "viewer")

    # --- the world -----------------------------------------------------------------------

    def reset_database(self) -> None:
        # as before each test: a worker's upkeep locking the tables in another order
        # deadlocked a bare TRUNCATE (once in CI)
        empty_tables(self.app, self.env["account_rows"])
        clear_sign_in_limits()

    def seed_audit_log(self) -> None:
        """Start the log with entries of every account and action, as a busy day leaves it."""
        from product_importer.extensions import db

        emails = [a.email for a in self.model.accounts.values()] + [None]
        seeded = [
            Expected(emails[n % 4], AUDIT_ACTIONS[n % 9], f"target {n}", "198.51.100.1")
            for n in range(SEEDED_AUDIT)
        ]
        insert = text(
            "INSERT INTO audit_log (at, actor_email, client_address, action, target) "
            "VALUES (now(), :actor, :address, :action, :target)"
        )
        with self.app.app_context(), db.engine.begin() as conn:
            conn.execute(insert, [e.__dict__ for e in seeded])
        self.model.audit += seeded
        self.seen_audit = SEEDED_AUDIT

    def new_client(self):
        client = self.app.test_client()
        client.environ_base["REMOTE_ADDR"] = ADDRESS
        return client

    def token_actor(self, token: Token) -> Actor:
        client = self.new_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token.secret}"
        return Actor("token", client, token.owner, token.id)

    def made_webhook(self) -> None:
        hook = {"url": "http://127.0.0.1:9/hook", "events": ["product.created"]}
        made = self.send(self.observer, "POST", "/api/webhooks", json=hook, shows_secret=True)
        assert made.status_code == 201, made.text
        self.model.secrets.add(made.get_json()["secret"])
        self.model.audit.append(Expected("admin@example.test", "webhook.created", hook["url"]))

    def send(self, actor: Actor, method: str, path: str, *, shows_secret=False, **options):
        """Send a request as `actor`; check the headers every answer has, and its secrets."""
        headers = dict(options.pop("headers", {}))
        if actor.kind == "session" and method not in ("GET", "HEAD"):
            headers.setdefault("X-CSRFToken", actor.csrf)
        response = actor.client.open(path, method=method, headers=headers, **options)
        body = response.get_data(as_text=True)
        response.close()
        policy = response.headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (method, path, name)
        if not shows_secret:
            shown = [secret for secret in self.model.secrets if secret in body]
            assert not shown, f"{method} {path} shows a secret"
        return response

    # --- what the model says ---------------------------------------------------------------

    def role_of(self, actor: Actor) -> str | None:
        """The role `actor` acts with now, or None: it is nobody (401)."""
        if actor.kind == "nobody" or actor.token == 0:
            return None
        account = self.model.accounts[actor.account]
        if not account.active:
            return None
        if actor.kind == "session":
            return account.role if actor.alive else None
        token = self.model.tokens[actor.token]
        if token.revoked or token.expired:
            return None
        return lower_role(token.role, account.role)

    def email_of(self, actor: Actor) -> str:
        return self.model.accounts[actor.account].email

    def allowed(self, actor: Actor, needed: str, response, api: bool = True) -> bool:
        """Whether the model lets `actor` do what needs `needed`; else check the refusal."""
        role = self.role_of(actor)
        if role is None:
            self.check_unauthorized(actor, response, api)
            return False
        if RANK[role] < RANK[needed]:
            assert response.status_code == 403, (actor, needed, response.status_code)
            if api:
                error = response.get_json()["error"]
                assert error["code"] == "forbidden"
                assert f"needs the {needed} role" in error["message"]
            return False
        assert response.status_code not in (401, 403), (actor, needed, response.text)
        return True

    def check_unauthorized(self, actor: Actor, response, api: bool) -> None:
        if not api:
            assert response.status_code == 302, (actor, response.status_code)
            assert response.headers["Location"].startswith("/login")
            return
        assert response.status_code == 401, (actor, response.status_code, response.text)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.get_json()["error"]["code"] == "unauthorized"

    def audit(self, actor: Actor, action: str, target: str | None, **more) -> None:
        self.model.audit.append(Expected(self.email_of(actor), action, target, **more))

    def end_sessions(self, account: int, keep: Actor | None = None) -> None:
        for actor in self.actors:
            if actor.kind == "session" and actor.account == account and actor is not keep:
                actor.alive = False

    def pick_actor(self, data, needed: str | None = None) -> Actor:
        """Any actor; or, half the time, one the model lets do what needs `needed`."""
        able = [a for a in self.actors if RANK.get(self.role_of(a), 0) >= RANK.get(needed, 9)]
        choices = st.sampled_from(self.actors)
        if able:
            choices = st.one_of(st.sampled_from(able), choices)
        return data.draw(choices, label="actor")

    def pick_account(self, data, *, besides_observer: bool) -> Account:
        ids = [i for i in self.model.accounts if i != 1 or not besides_observer]
        return self.model.accounts[data.draw(st.sampled_from(ids), label="account")]

    # --- accounts ------------------------------------------------------------------------------

    @rule(data=st.data(), role=st.sampled_from(ROLES), shout=st.booleans())
    def add_account(self, data, role, shout):
        actor = self.pick_actor(data, "admin")
        number = len(self.model.accounts) + 1
        email = f"{'USER' if shout else 'user'}{number}@Example.test"
        body = {"email": email, "role": role}
        response = self.send(actor, "POST", "/api/users", json=body, shows_secret=True)
        if not self.allowed(actor, "admin", response):
            return
        assert response.status_code == 201, response.text
        made = response.get_json()
        assert (made["id"], made["email"], made["role"]) == (number, email, role)
        self.model.accounts[number] = Account(number, email, role, made["password"])
        self.model.secrets.add(made["password"])
        self.audit(actor, "user.created", email)
        taken = self.send(actor, "POST", "/api/users", json=body | {"email": email.lower()})
        assert taken.status_code == 409  # emails are one in any case

    @rule(data=st.data(), role=st.sampled_from(ROLES))
    def change_role(self, data, role):
        actor = self.pick_actor(data, "admin")
        target = self.pick_account(data, besides_observer=True)
        self.change_account(actor, target, {"role": role})

    @rule(data=st.data(), active=st.booleans())
    def deactivate_or_reactivate(self, data, active):
        actor = self.pick_actor(data, "admin")
        target = self.pick_account(data, besides_observer=True)
        self.change_account(actor, target, {"active": active})

    def change_account(self, actor: Actor, target: Account, change: dict) -> None:
        response = self.send(actor, "PATCH", f"/api/users/{target.id}", json=change)
        if not self.allowed(actor, "admin", response):
            return
        oneself = change.get("role", "admin") != "admin" or change.get("active") is False
        if target.id == actor.account and oneself:
            assert response.status_code == 409, response.text  # not oneself
            return
        assert response.status_code == 200, response.text
        was_active = target.active
        for name, value in change.items():
            setattr(target, name, value)
        if not target.active or not was_active:  # no token it had works once it is active again
            self.end_sessions(target.id)
            for token in self.model.tokens.values():
                if token.owner == target.id:
                    token.revoked = True
        self.audit(actor, "user.changed", target.email)
        assert response.get_json()["role"] == target.role

    @rule(data=st.data())
    def reset_password(self, data):
        actor = self.pick_actor(data, "admin")
        target = self.pick_account(data, besides_observer=False)
        response = self.send(actor, "POST", f"/api/users/{target.id}/password", shows_secret=True)
        if not self.allowed(actor, "admin", response):
            return
        assert response.status_code == 200, response.text
        target.password = response.get_json()["password"]
        self.model.secrets.add(target.password)
        self.end_sessions(target.id)
        self.audit(actor, "user.password_reset", target.email)

    @rule(data=st.data(), right=st.booleans())
    def change_own_password(self, data, right):
        actor = self.pick_actor(data, "viewer")
        new = f"password number {len(self.model.secrets)} of the model"
        current = self.model.accounts[actor.account].password if actor.account else PASSWORD
        body = {"current_password": current if right else "not the password", "new_password": new}
        self.forget_ended_minutes()
        response = self.send(actor, "POST", "/api/account/password", json=body)
        if not self.allowed(actor, "viewer", response):
            return
        email = self.email_of(actor)
        if self.password_change_limited(actor, (account_key(email), ACCOUNT_SCOPE), response):
            return
        if not right:
            # one count with the account's failed sign-ins
            assert response.status_code == 422, response.text
            key = (account_key(email), ACCOUNT_SCOPE)
            self.model.failed[key] = self.model.failed.get(key, 0) + 1
            self.audit(actor, "account.password_change_failed", email)
            return
        assert response.status_code == 204, response.text
        self.model.accounts[actor.account].password = new
        self.model.secrets.add(new)
        # Other sessions end; a token keeps none (it is no session).
        self.end_sessions(actor.account, keep=actor if actor.kind == "session" else None)
        self.audit(actor, "account.password_changed", self.email_of(actor))

    def password_change_limited(self, actor: Actor, key: tuple[str, str], response) -> bool:
        """Whether the change was refused past the account's failed tries, as the model expects
        (the first refusal a minute of the account is audited, at sign-in or here)."""
        if self.model.failed.get(key, 0) < LIMIT:
            assert response.status_code != 429, "refused a password change below the limit"
            return False
        if response.status_code != 429:  # the count's minute has ended
            assert not counted(*key), response.status_code
            self.model.failed.pop(key)
            return False
        assert "Too many wrong passwords" in response.get_json()["error"]["message"]
        if key not in self.model.refusals_audited:
            self.model.refusals_audited.add(key)
            self.audit(actor, "account.password_change_refused", self.email_of(actor))
        return True

    # --- sign-ins --------------------------------------------------------------------------------

    @rule(data=st.data(), right=st.booleans(), case=st.sampled_from(["as is", "upper", " padded "]))
    def sign_in(self, data, right, case):
        """Sign in through the form, from one of a few addresses, with the email in any case."""
        emails = [a.email for a in self.model.accounts.values()] + [UNKNOWN_EMAIL]
        email = data.draw(st.sampled_from(emails), label="email")
        typed = {"as is": email, "upper": email.upper(), " padded ": f"  {email} "}[case]
        address = data.draw(st.sampled_from(SIGN_IN_ADDRESSES), label="address")
        account = next((a for a in self.model.accounts.values() if a.email == email), None)
        password = account.password if account and right else "not the password"
        browser, response = self.post_sign_in(typed, password, address)
        keys = ((address, "sign-in-address"), (account_key(email), ACCOUNT_SCOPE))
        if self.limited(keys, response, typed, address):
            return
        if account is not None and account.active and right:
            assert response.status_code == 302, response.text
            self.signed_in(browser, account, address)
            return
        assert response.status_code == 401, response.status_code
        self.count_failure(keys, typed, address)

    @rule(data=st.data(), tries=st.integers(1, LIMIT + 2))
    def guess_passwords(self, data, tries):
        """Wrong passwords, again and again, for one email from one address: 429 past 10."""
        emails = [a.email for a in self.model.accounts.values()] + [UNKNOWN_EMAIL]
        email = data.draw(st.sampled_from(emails), label="email")
        address = data.draw(st.sampled_from(SIGN_IN_ADDRESSES), label="address")
        keys = ((address, "sign-in-address"), (account_key(email), ACCOUNT_SCOPE))
        for number in range(tries):
            typed = email.upper() if number % 2 else email  # one account in any case
            _, response = self.post_sign_in(typed, "a wrong guess", address)
            if not self.limited(keys, response, typed, address):
                assert response.status_code == 401, response.status_code
                self.count_failure(keys, typed, address)

    def count_failure(self, keys, typed: str, address: str) -> None:
        for key in keys:
            self.model.failed[key] = self.model.failed.get(key, 0) + 1
        self.model.audit.append(Expected(None, "auth.sign_in_failed", self.kept(typed), address))

    def kept(self, typed: str) -> str | None:
        """What the log keeps of an email typed: it as typed if it names an account, else
        nothing (it may be a password typed in the wrong box)."""
        known = {a.email.lower() for a in self.model.accounts.values()}
        return typed.strip() if typed.strip().lower() in known else None

    def post_sign_in(self, email: str, password: str, address: str):
        """Post the sign-in form from `address` in a new browser; return it and the answer."""
        self.forget_ended_minutes()
        browser = self.new_client()
        browser.environ_base["REMOTE_ADDR"] = address
        token = form_token(self.send(Actor("nobody", browser), "GET", "/login").get_data(True))
        form = {"csrf_token": token, "email": email, "password": password}
        return browser, self.send(Actor("nobody", browser), "POST", "/login", data=form)

    def sign_in_as(self, account: Account, address: str) -> None:
        browser, response = self.post_sign_in(account.email, account.password, address)
        assert response.status_code == 302, response.status_code
        self.signed_in(browser, account, address)

    def limited(self, keys: tuple[tuple[str, str], ...], response, typed, address) -> bool:
        """Whether the sign-in was refused for too many failures, as the model expects.

        The first refusal a minute of the limit it reached (the account's, if both) is audited.
        """
        over = [key for key in keys if self.model.failed.get(key, 0) >= LIMIT]
        if over and response.status_code != 429:
            # The count's minute may have ended: then Redis holds it no more, nor do we.
            assert not any(counted(*key) for key in over), (over, response.status_code)
            for key in over:
                self.model.failed.pop(key)
            return False
        if response.status_code == 429:
            assert over, "refused a sign-in below the limit"
            assert "Too many failed sign-ins" in response.get_data(as_text=True)
            if over[-1] not in self.model.refusals_audited:
                self.model.refusals_audited.add(over[-1])
                refused = Expected(None, "auth.sign_in_refused", self.kept(typed), address)
                self.model.audit.append(refused)
        return bool(over)

    def forget_ended_minutes(self) -> None:
        """Forget the refusals audited in a minute that has ended (Redis forgot them too)."""
        self.model.refusals_audited = {
            key for key in self.model.refusals_audited if counted(*key, "refusal-audited/")
        }

    def signed_in(self, browser, account: Account, address: str) -> None:
        page = browser.get("/account")
        assert page.status_code == 200
        csrf = CSRF_META.search(page.get_data(as_text=True)).group(1)
        browser.environ_base["REMOTE_ADDR"] = ADDRESS
        self.actors.append(Actor("session", browser, account.id, csrf=csrf))
        self.model.audit.append(Expected(account.email, "auth.signed_in", account.email, address))

    @rule(data=st.data())
    def sign_out(self, data):
        sessions = [a for a in self.actors if a.kind == "session"]
        if not sessions:
            return
        actor = data.draw(st.sampled_from(sessions), label="session")
        page = actor.client.get("/account")
        token = form_token(page.get_data(as_text=True)) if page.status_code == 200 else "stale"
        response = self.send(actor, "POST", "/logout", data={"csrf_token": token})
        assert response.status_code == 302
        assert response.headers["Location"] == "/login"
        if self.role_of(actor) is not None:
            self.audit(actor, "auth.signed_out", self.email_of(actor))
        actor.alive = False

    # --- tokens -------------------------------------------------------------------------------

    @rule(
        data=st.data(),
        role=st.sampled_from([None, *ROLES]),
        expires=st.sampled_from([None, 1, 30, 3650, 0, 3651, "7"]),
    )
    def make_token(self, data, role, expires):
        self.make_token_as(self.pick_actor(data, "viewer"), role, expires)

    def make_token_as(self, actor: Actor, role: str | None, expires=None) -> None:
        name = f"token {len(self.model.tokens) + 1}"
        body = {"name": name} | ({"role": role} if role else {}) | {"expires_days": expires}
        asked_at = datetime.now(UTC)  # before the server's check: a later end is later there too
        response = self.send(actor, "POST", "/api/tokens", json=body, shows_secret=True)
        if not self.allowed(actor, "viewer", response):
            return
        acting = self.role_of(actor)  # a token's role is at most its owner's, and so its own
        wanted = role or acting
        # A token that expires makes tokens that expire no later (with it, by default).
        cap = self.model.tokens[actor.token].expires_at if actor.kind == "token" else None
        problems = set()
        if RANK[wanted] > RANK[acting]:
            problems.add("role")
        if expires is not None:
            valid = isinstance(expires, int) and 1 <= expires <= 3650
            if not valid or (cap is not None and asked_at + timedelta(days=expires) > cap):
                problems.add("expires_days")
        if problems:
            assert response.status_code == 422, (actor, body, response.text)
            assert set(response.get_json()["error"]["details"]) == problems
            return
        assert response.status_code == 201, (actor, body, response.text)
        self.made_token(actor, response.get_json(), wanted, name, expires, cap)

    def made_token(
        self, actor: Actor, made: dict, role: str, name: str, expires, cap: datetime | None
    ) -> None:
        secret = made["token"]
        assert secret.startswith("pit_") and made["prefix"] == secret[:12]
        assert (made["role"], made["owner"], made["name"]) == (role, self.email_of(actor), name)
        expires_at = made["expires_at"] and datetime.fromisoformat(made["expires_at"])
        if expires is None:
            assert expires_at == cap  # never, or with the token that made it
        else:
            assert expires_at is not None and (cap is None or expires_at <= cap)
        made_by = actor.token if actor.kind == "token" else None  # none from a browser
        assert made["made_by_token"] == made_by
        token = Token(
            made["id"], secret, actor.account, role, name, made_by=made_by, expires_at=expires_at
        )
        self.model.tokens[token.id] = token
        self.model.secrets.add(secret)
        self.actors.append(self.token_actor(token))
        self.audit(actor, "token.created", name)

    @rule(data=st.data())
    def revoke_token(self, data):
        actor = self.pick_actor(data, "viewer")
        ids = [i for i in self.model.tokens if i != 1] + [999999]
        token_id = data.draw(st.sampled_from(ids), label="token")
        response = self.send(actor, "DELETE", f"/api/tokens/{token_id}")
        if not self.allowed(actor, "viewer", response):
            return
        token = self.model.tokens.get(token_id)
        mine = token is not None and token.owner == actor.account
        if token is None or token.revoked or not (mine or self.role_of(actor) == "admin"):
            assert response.status_code == 404, (actor, token, response.status_code)
            return
        assert response.status_code == 204, response.text
        self.revoke_with_those_made_with_it(token)
        self.audit(actor, "token.revoked", token.name)

    def revoke_with_those_made_with_it(self, token: Token) -> None:
        token.revoked = True
        for other in self.model.tokens.values():
            if other.made_by == token.id and not other.revoked:
                self.revoke_with_those_made_with_it(other)

    @rule(data=st.data())
    def let_a_token_expire(self, data):
        """Its time runs out: the expiry is set in the past, as a clock would leave it."""
        from product_importer.extensions import db

        token_id = data.draw(st.sampled_from([i for i in self.model.tokens if i != 1]))
        with self.app.app_context(), db.engine.begin() as conn:
            moved = text(
                "UPDATE access_tokens SET expires_at = now() - interval '1 s' WHERE id = :i"
            )
            conn.execute(moved, {"i": token_id})
        self.model.tokens[token_id].expired = True

    # --- every route, and requests to refuse ---------------------------------------------------

    @rule(data=st.data())
    def call_every_route(self, data):
        """Call every API route and page as one actor: each answers as the roles table says."""
        actor = self.pick_actor(data)
        for method, rule_ in self.env["routes"]:
            body = None if method == "GET" else {}
            response = self.send(actor, method, sample_path(rule_), json=body)
            self.allowed(actor, needed_role(method, rule_), response)
        for path, needed in PAGES.items():
            page = self.send(actor, "GET", path, headers={"Accept": "text/html"})
            if self.allowed(actor, needed, page, api=False):
                assert page.status_code == (404 if "999999" in path else 200), path

    def check_tokens_seen_by(self, actor: Actor) -> None:
        """One's own tokens; everyone's for an actor acting as an admin (not a lesser token)."""
        response = self.send(actor, "GET", "/api/tokens")
        if not self.allowed(actor, "viewer", response):
            return
        everyone = self.role_of(actor) == "admin"
        assert [t["id"] for t in response.get_json()["items"]] == [
            t.id
            for t in self.model.tokens.values()
            if not t.revoked and (everyone or t.owner == actor.account)
        ], actor

    @rule(data=st.data())
    def cross_site_requests(self, data):
        """A browser's state change from elsewhere (or without the page's token) is refused."""
        sessions = [a for a in self.actors if a.kind == "session"]
        actor = data.draw(st.sampled_from(sessions or self.actors), label="actor")
        for headers in CROSS_SITE + ([{"X-CSRFToken": ""}] if actor.kind == "session" else []):
            body = {"name": "from elsewhere"}
            response = self.send(actor, "POST", "/api/tokens", json=body, headers=headers)
            if self.role_of(actor) is None:
                self.check_unauthorized(actor, response, api=True)
                continue
            assert response.status_code == 403, (headers, actor, response.status_code)
            assert response.get_json()["error"]["code"] == "forbidden"
            if actor.kind == "session" and headers in CROSS_SITE:  # the sign-out form too
                token = form_token(actor.client.get("/account").get_data(as_text=True))
                form = {"csrf_token": token}
                refused = self.send(actor, "POST", "/logout", data=form, headers=headers)
                assert refused.status_code == 403, (headers, refused.status_code)

    @rule(data=st.data(), method=st.sampled_from(["GET", "POST"]))
    def another_host(self, data, method):
        actor = self.pick_actor(data)
        path = data.draw(st.sampled_from(["/api/tokens", "/api/users", "/login", "/account"]))
        response = self.send(actor, method, path, base_url="http://evil.example", json={})
        assert response.status_code == 400, (path, response.status_code)

    @rule(data=st.data())
    def too_large(self, data):
        actor = self.pick_actor(data)
        path = data.draw(st.sampled_from(sorted(JSON_ROUTES)), label="path")
        body = json.dumps({"name": "x" * MIB})
        headers = {"Content-Type": "application/json"}
        response = self.send(actor, "POST", path, data=body, headers=headers)
        if self.allowed(actor, JSON_ROUTES[path], response):
            assert response.status_code == 413, (path, response.status_code)
            assert response.get_json()["error"]["code"] == "too_large"

    # --- after every step ---------------------------------------------------------------------

    @invariant()
    def each_actor_is_who_the_model_says(self):
        """Each acts as its account with the model's role, and sees the tokens it may see."""
        for actor in self.actors:
            response = self.send(actor, "GET", "/api/account")
            role = self.role_of(actor)
            if role is None:
                self.check_unauthorized(actor, response, api=True)
                continue
            if actor.kind == "token":  # a session acts with its account's role, a token maybe less
                self.check_tokens_seen_by(actor)
            me = response.get_json()
            assert (me["account"]["email"], me["role"], me["via"]) == (
                self.email_of(actor),
                role,
                actor.kind,
            ), actor

    @invariant()
    def the_accounts_are_the_models(self):
        listed = self.send(self.observer, "GET", "/api/users").get_json()["items"]
        assert [(u["id"], u["email"], u["role"], u["active"]) for u in listed] == [
            (a.id, a.email, a.role, a.active) for a in self.model.accounts.values()
        ]

    @invariant()
    def the_tokens_are_the_models_and_only_their_hashes_are_kept(self):
        listed = self.send(self.observer, "GET", "/api/tokens").get_json()["items"]
        live = [t for t in self.model.tokens.values() if not t.revoked]
        owners = {t.id: self.model.accounts[t.owner] for t in live}
        assert [
            (t["id"], t["role"], t["made_as"], t["owner"], t["prefix"], t["made_by_token"])
            for t in listed
        ] == [
            # listed with the role it acts with: its owner's now caps the one it was made with
            (
                t.id,
                lower_role(t.role, owners[t.id].role),
                t.role,
                owners[t.id].email,
                t.secret[:12],
                t.made_by,
            )
            for t in live
        ]
        from product_importer.extensions import db

        with self.app.app_context(), db.engine.connect() as conn:
            stored = conn.execute(text("SELECT id, token_hash FROM access_tokens")).all()
            dumped = str(conn.execute(text("SELECT * FROM access_tokens")).all())
        assert dict(stored) == {t.id: sha256(t.secret) for t in live}
        assert not any(t.secret in dumped for t in self.model.tokens.values())

    @invariant()
    def the_audit_log_holds_what_happened(self):
        """The entries added since the last step, read newest first, page after page."""
        new, page = [], 1
        while True:
            found = self.send(self.observer, "GET", f"/api/audit?page={page}").get_json()
            fresh = [e for e in found["items"] if e["id"] > self.seen_audit]
            new += fresh
            if len(fresh) < len(found["items"]) or page >= found["pages"]:
                break
            page += 1
        new.reverse()
        expected = self.model.audit[self.seen_audit :]
        assert [(e["actor"], e["action"], e["target"], e["client_address"]) for e in new] == [
            (e.actor, e.action, e.target, e.address) for e in expected
        ]
        self.seen_audit = len(self.model.audit)

    @rule(data=st.data())
    def filter_the_audit_log(self, data):
        """Filtered by account and action (exact, or a prefix ending in a dot), and paged."""
        for _ in range(3):
            self.check_audit_filter(data)

    def check_audit_filter(self, data) -> None:
        emails = [a.email for a in self.model.accounts.values()]
        actor = data.draw(st.sampled_from(["", *emails, emails[-1].upper()]), label="actor")
        action = data.draw(st.sampled_from(["", *AUDIT_ACTIONS]), label="action")
        query = {"actor": actor, "action": action}
        first = self.send(self.observer, "GET", "/api/audit", query_string=query).get_json()
        wanted = [
            e
            for e in self.model.audit[::-1]
            if (not actor or (e.actor or "").lower() == actor.lower())
            and (
                not action
                or e.action == action
                or (action.endswith(".") and e.action.startswith(action))
            )
        ]
        assert (first["total"], first["per_page"]) == (len(wanted), 50)
        assert first["pages"] == max(1, -(-len(wanted) // 50))
        for page in range(1, first["pages"] + 2):  # and one past the last, empty
            found = self.send(
                self.observer, "GET", "/api/audit", query_string=query | {"page": page}
            ).get_json()
            assert [(e["action"], e["target"]) for e in found["items"]] == [
                (e.action, e.target) for e in wanted[(page - 1) * 50 : page * 50]
            ], (query, page)


def sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def counted(key: str, limit: str, what: str = "") -> bool:
    """Whether Redis still counts failed sign-ins (or `what`) of `key` for `limit` (its minute
    goes on)."""
    store = redis.Redis.from_url(REDIS_URL)
    return any(store.scan_iter(f"*product-importer-limits/{what}{key}/*{limit}/*"))


@pytest.fixture
def machine_env(app, accounts, account_rows):
    AccessMachine.app = app
    with app.app_context():
        AccessMachine.env = {
            "accounts": accounts,
            "account_rows": account_rows,
            "routes": api_routes(app),
        }


def test_accounts_sessions_and_tokens_follow_the_model(machine_env):
    run_state_machine_as_test(
        AccessMachine,
        settings=settings(
            max_examples=8,
            stateful_step_count=20,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],  # shrinking a run of requests takes minutes
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


class Script:
    """Stands for hypothesis's `data` in a rule: hands out the given values in turn."""

    def __init__(self, *values):
        self.values = list(values)

    def draw(self, _strategy, label=None):
        return self.values.pop(0)


# The actors every run starts with (AccessMachine.__init__), by their place in `actors`.
ADMIN_TOKEN, EDITOR_TOKEN, EDITOR_SESSION, ADMINS_VIEWER_TOKEN = 1, 2, 6, 8
EDITOR = 2  # the editor's account id


def deactivated_then_reactivated(machine):
    """A deactivation ends the account's sessions and revokes its tokens: they stay ended
    once it is active again."""
    admin, session = machine.actors[ADMIN_TOKEN], machine.actors[EDITOR_SESSION]
    assert (session.kind, session.account, session.alive) == ("session", EDITOR, True)
    yield machine.deactivate_or_reactivate(Script(admin, EDITOR), active=False)
    yield machine.deactivate_or_reactivate(Script(admin, EDITOR), active=True)
    assert not machine.actors[EDITOR_SESSION].alive
    assert machine.role_of(machine.actors[EDITOR_TOKEN]) is None  # the editor's token, revoked


def audit_log_filtered_by_prefixes(machine):
    """Prefixes of actions the log holds, and exact actions beside them."""
    filters = ["auth.", "user.", "token.", "auth.signed_in", "account.", "user.created"]
    yield machine.filter_the_audit_log(Script(*[v for f in filters for v in ("", f)]))


def tokens_made_by_a_lesser_token(machine):
    """A viewer token of an admin makes a viewer token with the role left out, none stronger."""
    lesser = machine.actors[ADMINS_VIEWER_TOKEN]
    assert (lesser.account, machine.model.tokens[lesser.token].role) == (1, "viewer")
    yield machine.make_token(Script(lesser), role=None, expires=None)
    yield machine.make_token(Script(lesser), role="admin", expires=None)
    yield machine.make_token(Script(lesser), role="editor", expires=30)


def tokens_made_with_a_revoked_token(machine):
    """A token makes one, which makes another; revoking the first revokes both, not a sibling
    made in a browser."""
    admin, lesser = machine.actors[ADMIN_TOKEN], machine.actors[ADMINS_VIEWER_TOKEN]
    yield machine.make_token(Script(lesser), role=None, expires=None)
    yield machine.make_token(Script(machine.actors[-1]), role=None, expires=None)
    admins_session = next(a for a in machine.actors if a.kind == "session" and a.account == 1)
    yield machine.make_token(Script(admins_session), role="viewer", expires=None)
    yield machine.revoke_token(Script(admin, lesser.token))
    assert [machine.role_of(actor) for actor in machine.actors[-3:]] == [None, None, "viewer"]


def sign_ins_past_the_limit(machine):
    """Failed sign-ins up to the limit, then refusals: the first of them is audited."""
    yield machine.guess_passwords(Script("editor@example.test", SIGN_IN_ADDRESSES[1]), tries=12)
    yield machine.sign_in(Script("editor@example.test", SIGN_IN_ADDRESSES[2]), True, "upper")
    yield machine.guess_passwords(Script(UNKNOWN_EMAIL, SIGN_IN_ADDRESSES[1]), tries=2)


@pytest.mark.parametrize(
    "scenario",
    [
        deactivated_then_reactivated,
        audit_log_filtered_by_prefixes,
        tokens_made_by_a_lesser_token,
        tokens_made_with_a_revoked_token,
        sign_ins_past_the_limit,
    ],
)
def test_the_model_checks_these_steps_every_run(machine_env, scenario):
    """Steps the random runs may not reach at their size, through the same model and checks."""
    machine = AccessMachine()
    for _ in scenario(machine):
        for check in INVARIANTS:
            getattr(machine, check)()


INVARIANTS = [
    "each_actor_is_who_the_model_says",
    "the_accounts_are_the_models",
    "the_tokens_are_the_models_and_only_their_hashes_are_kept",
    "the_audit_log_holds_what_happened",
]
