"""Every page the app serves, checked by axe-core as each role sees it, at a desktop's and a
phone's width, and in the states people meet most (an open form or dialog, a secret shown once,
a notice, the column mapping, an import waiting in the queue).

axe-core is the accessibility engine of the browsers' own audits: it finds what a screen reader
or keyboard user would meet (a control without a name, text too faint to read, a heading out
of order, a focusable control in a hidden region, a table without headers). The test fails on
any violation, whatever impact axe gives it (minor and moderate ones too: the pages have none,
so a new one is a regression), naming the rule, the page and the element.
"""

import itertools
import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.conftest import paused
from tests.helpers import import_csv, upload_csv, wait_for_job

from .conftest import NO_SIDEWAYS_SCROLL, WIDTHS, sign_in

AXE = Axe()
# Besides its default rules (WCAG 2.x A and AA, and best practices), axe's experimental ones
# that check what a person meets: a name that does not contain the words shown (speech input
# says those words), a paragraph drawn as a heading, cells without headers, a fake caption,
# a page locked to one orientation. Left off: `hidden-content`, which never fails, it lists
# hidden content for a person to review.
EXPERIMENTAL = [
    "label-content-name-mismatch",
    "p-as-heading",
    "td-has-header",
    "table-fake-caption",
    "focus-order-semantics",
    "css-orientation-lock",
]
OPTIONS = {
    "resultTypes": ["violations"],  # the other results in full would only slow it down
    "rules": {rule: {"enabled": True} for rule in EXPERIMENTAL},
}
# A dialog or a notice fades in: axe reads its colours once its animation has ended, not
# half-way (the spinners and the progress bar's stripes run forever: not waited for).
ANIMATIONS_ENDED = """() => Promise.all(document.getAnimations()
  .filter((animation) => animation.effect.getComputedTiming().endTime !== Infinity)
  .map((animation) => animation.finished.catch(() => null)))"""
REFLOW_WIDTH = 320
HOOK_URL = "http://127.0.0.1:9/hooks"
LONG_DESCRIPTION = "A description long enough to be cut to one line in the table. " * 8
serial = itertools.count()  # new names for what a state creates, once per width


@pytest.fixture(autouse=True)
def _fresh_sign_in_limits():
    """The refused sign-in shown here must not count against another test's."""
    from tests.accounts.conftest import clear_sign_in_limits

    yield
    clear_sign_in_limits()


@pytest.fixture
def catalog(http) -> dict:
    """Products (one inactive, one with a long description), a completed import with changes, a
    failed one (its columns to map), a plan, an undo, a webhook with a failed delivery, a second
    account and a token; the sign-ins add the audit entries."""
    rows = "\n".join(f"P-{n:03},Product {n},Description {n}" for n in range(60))
    first = import_csv(http, f"sku,name,description\n{rows}\n,no sku,x\n", "catalog.csv")
    for product in (
        {"sku": "LONG-1", "name": "Long one", "description": LONG_DESCRIPTION},
        {"sku": "OFF-1", "name": "Switched off", "active": False},
    ):
        assert http.post("/api/products", json=product).status_code == 201
    changed = "\n".join(f"P-{n:03},Renamed {n}" for n in range(5))
    second = import_csv(http, f"sku,name\n{changed}\nNEW-1,New one\n", "changes.csv")
    failed = import_csv(http, "Item Code,Title\nX-1,Thing\n", "no-sku.csv")
    planned = import_csv(http, "sku,name\nP-001,Planned\nPLAN-1,Plan\n", data={"plan": "true"})
    undone = import_csv(http, "sku,name\nU-1,Undone\n", "undone.csv")
    undo = wait_for_job(http, http.post(f"/api/imports/{undone['id']}/undo").json()["id"])
    hook = {"url": HOOK_URL, "events": ["product.created"], "description": "ERP"}
    webhook = http.post("/api/webhooks", json=hook).json()
    http.post(f"/api/webhooks/{webhook['id']}/test")  # refused: a failed delivery to show
    http.post("/api/users", json={"email": "second@example.test", "role": "editor"})
    http.post("/api/tokens", json={"name": "Nightly sync", "role": "viewer"})
    return {
        "completed": first["id"],
        "updated": second["id"],
        "failed": failed["id"],
        "planned": planned["id"],
        "undo": undo["id"],
    }


def admin_pages(ids: dict) -> dict[str, str]:
    """Every page an admin sees, by a short name; the other roles see some of them."""
    return {
        "upload": "/",
        "upload-completed": f"/?job={ids['completed']}",
        "upload-mapping": f"/?job={ids['failed']}",
        "upload-planned": f"/?job={ids['planned']}",
        "imports": "/imports",
        "import-completed": f"/imports/{ids['completed']}",
        "import-changes": f"/imports/{ids['updated']}",
        "import-mapping": f"/imports/{ids['failed']}",
        "import-plan": f"/imports/{ids['planned']}",
        "import-undo": f"/imports/{ids['undo']}",
        "products": "/products",
        "products-paged": "/products?per_page=25&page=2",
        "products-none": "/products?sku=nothing-matches",
        "webhooks": "/webhooks",
        "account": "/account",
        "users": "/users",
        "audit": "/audit",
        "not-found": "/no-such-page",
    }


# The pages whose markup differs for an editor or a viewer (fewer buttons, an upload they may
# not make, a plan they may not apply); the others are the admin's without a control or two.
OTHER_ROLES = {
    "editor": ["products"],
    "viewer": ["upload", "import-plan", "products", "webhooks"],
}


def settle(page: Page) -> None:
    """Wait until the page's scripts have filled it (its tables say they are busy until)."""
    expect(page.locator("[aria-busy=true]")).to_have_count(0)
    expect(page.get_by_text(re.compile("^Loading"))).to_have_count(0)


def violations(page: Page, where: str) -> list[str]:
    """What axe-core finds on the page as it is now: a line per rule, with its first element
    (the others are alike: the rows of a table) and why it fails."""
    page.evaluate(ANIMATIONS_ENDED)
    found = AXE.run(page, options=OPTIONS).response["violations"]
    return [f"{where}: {describe(rule)}" for rule in found]


def describe(rule: dict) -> str:
    """`color-contrast (serious) <help>: 3 element(s), the first <target> <html>: <why>`."""
    node = rule["nodes"][0]
    why = "; ".join(check["message"] for kind in ("any", "all", "none") for check in node[kind])
    return (
        f"{rule['id']} ({rule['impact']}) {rule['help']}: {len(rule['nodes'])} element(s), the "
        f"first {' '.join(map(str, node['target']))} {node['html'][:160]}: {why}"
    )


def at_each_width(page: Page, where: str, path: str | None, then=None) -> list[str]:
    """Load `path` (or keep the page as it is) and do `then` at each width; audit each, then
    check that the page still fits 320 px (WCAG 1.4.10: a 1280 px screen zoomed to 400%)."""
    found = []
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        if path:
            page.goto(path)
            settle(page)
        if then:
            then(page)
        found += violations(page, f"{where} at {width} px ({label})")
    page.set_viewport_size({"width": REFLOW_WIDTH, "height": 900})
    if not page.evaluate(NO_SIDEWAYS_SCROLL):
        wide = page.evaluate("document.scrollingElement.scrollWidth")
        found.append(f"{where} at {REFLOW_WIDTH} px: scrolls sideways, {wide} px wide")
    return found


def mapping_shown(page: Page) -> None:
    expect(page.get_by_role("button", name="Import with these columns")).to_be_visible()


def dialog_opened(button: str, dialog: str):
    """A state: the dialog that `button` opens."""

    def open_it(page: Page) -> None:
        page.get_by_role("button", name=button, exact=True).click()
        expect(page.get_by_role("dialog", name=dialog)).to_be_visible()

    return open_it


def product_saved(page: Page) -> None:
    dialog_opened("Edit P-000", "Edit P-000")(page)
    page.locator("#product-name").fill(f"Renamed by hand {next(serial)}")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator(".notice").first).to_be_visible()


def product_refused(page: Page) -> None:
    dialog_opened("New product", "New product")(page)
    page.locator("#product-save").click()
    expect(page.locator("#product-sku[aria-invalid=true]")).to_be_visible()


def description_opened(page: Page) -> None:
    page.get_by_role("button", name=re.compile("^A description long enough")).click()
    expect(page.locator("[data-description][aria-expanded=true]")).to_be_visible()


def webhook_added(page: Page) -> None:
    dialog_opened("Add webhook", "Add webhook")(page)
    page.get_by_label("URL", exact=True).fill(f"http://127.0.0.1:9/added-{next(serial)}")
    page.locator("#webhook-save").click()
    expect(page.get_by_role("dialog", name="Webhook added")).to_be_visible()


def webhook_tested(page: Page) -> None:
    page.get_by_role("button", name=f"Test {HOOK_URL}").click()
    expect(page.locator("#webhooks-body .test-result .badge")).to_be_visible()


def deliveries_shown(page: Page) -> None:
    page.get_by_role("button", name=f"Deliveries of {HOOK_URL}").click()
    expect(page.locator("#deliveries-body tr")).not_to_have_count(0)


def resend_asked(page: Page) -> None:
    deliveries_shown(page)
    dialog_opened("Resend failed since…", "Resend failed deliveries")(page)


def token_created(page: Page) -> None:
    page.get_by_label("Name", exact=True).fill(f"CI {next(serial)}")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#new-token")).to_be_visible()


def account_added(page: Page) -> None:
    page.get_by_label("Email", exact=True).fill(f"added-{next(serial)}@example.test")
    page.get_by_role("button", name="Add account").click()
    expect(page.locator("#new-password-box")).to_be_visible()


def admin_states(ids: dict) -> dict[str, tuple[str, object]]:
    """The states of a page that people meet most: its page, and how to reach the state."""
    completed = f"/imports/{ids['completed']}"
    products = "/products?per_page=25"  # rows alike: half of them tell axe as much, sooner
    return {
        "products: the edit form": (products, dialog_opened("Edit P-000", "Edit P-000")),
        "products: a product saved": (products, product_saved),
        "products: a new one refused": (products, product_refused),
        "products: a description opened": (products, description_opened),
        "products: delete one": (products, dialog_opened("Delete P-001", "Delete product")),
        "products: delete all": (
            products,
            dialog_opened("Delete all products", "Delete all products"),
        ),
        "webhooks: the edit form": (
            "/webhooks",
            dialog_opened(f"Edit {HOOK_URL}", "Edit webhook"),
        ),
        "webhooks: one added, its secret": ("/webhooks", webhook_added),
        "webhooks: a test sent": ("/webhooks", webhook_tested),
        "webhooks: the deliveries": ("/webhooks", deliveries_shown),
        "webhooks: resend failed": ("/webhooks", resend_asked),
        "webhooks: delete one": (
            "/webhooks",
            dialog_opened(f"Delete {HOOK_URL}", "Delete webhook"),
        ),
        "import: undo it": (
            completed,
            dialog_opened("Undo this import", f"Undo import #{ids['completed']}"),
        ),
        "account: a token created": ("/account", token_created),
        "users: an account added": ("/users", account_added),
        "users: reset a password": ("/users", reset_dialog_opened),
    }


def reset_dialog_opened(page: Page) -> None:
    """The reset dialog of the viewer's account, its box to revoke the tokens too ticked."""
    row = page.locator("#users-body tr", has_text="viewer@example.test")
    row.get_by_role("button", name="Reset password").click()
    dialog = page.get_by_role("dialog", name="Reset password")
    dialog.get_by_label("Also revoke their tokens").check()


def queued_import(page: Page, http, worker) -> list[str]:
    """An import waiting in the queue (its worker stopped): its progress, its Cancel."""
    with paused(worker):
        response = upload_csv(http, "sku,name\nQ-1,Queued\n", "queued.csv")
        job = response.json()["id"]
        cancel = dialog_opened("Cancel import", f"Cancel import #{job}")
        found = at_each_width(page, "admin: import queued", f"/imports/{job}")
        found += at_each_width(page, "admin: import queued, cancel it", f"/imports/{job}", cancel)
        found += at_each_width(page, "admin: upload, an import queued", f"/?job={job}")
        found += at_each_width(page, "admin: imports, one queued", "/imports")
    wait_for_job(http, job)
    return found


def test_every_page_has_no_accessibility_violation(
    signed_out_page: Page, accounts, catalog, app, http, live_worker
):
    page = signed_out_page
    found = at_each_width(page, "sign-in", "/login")
    found += at_each_width(page, "not found, signed out", "/no-such-page")
    page.goto("/login")
    page.get_by_label("Email").fill(accounts["viewer"].email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    found += at_each_width(page, "sign-in refused", None)

    pages = admin_pages(catalog)
    sign_in(page, accounts["admin"].email)
    for name, path in pages.items():
        then = mapping_shown if name.endswith("-mapping") else None
        found += at_each_width(page, f"admin: {name}", path, then)
    for name, (path, then) in admin_states(catalog).items():
        found += at_each_width(page, f"admin: {name}", path, then)
    found += queued_import(page, http, live_worker)

    for role, names in OTHER_ROLES.items():
        page.get_by_role("button", name="Sign out").click()
        sign_in(page, accounts[role].email)
        for name in names:
            found += at_each_width(page, f"{role}: {name}", pages[name])
        if role == "editor":
            found += at_each_width(page, "editor: not allowed (403)", "/users")

    link = setup_link(app)
    found += at_each_width(page, "sign-in, no account yet", "/login")
    expect(page.get_by_text("No account exists yet.")).to_be_visible()
    found += at_each_width(page, "setup link", link)
    page.get_by_label("Email").fill("first@example.test")
    page.get_by_label("Password (at least 10 characters)").fill("short")
    page.get_by_label("Password again").fill("short")
    page.get_by_role("button", name="Create the admin account").click()
    expect(page.get_by_text("Use at least 10 characters.")).to_be_visible()
    found += at_each_width(page, "setup link refused", None)
    assert not found, "\n".join(found)


def setup_link(app) -> str:
    """The first-run setup page's address: valid only while no account exists (so the last
    page visited: it removes them all)."""
    from product_importer.accounts import service
    from product_importer.extensions import db

    with app.app_context():
        db.session.execute(db.text("TRUNCATE users CASCADE"))
        token = service.new_setup_link_token(db.session)
        db.session.commit()
    return f"/setup?token={token}"


# What axe does not check (WCAG 1.4.11): the edge of a field and the track of a switch, all that
# shows where they are, and the ring that shows where the focus is, each 3:1 at least against
# what is behind it. Colours are blended over that background as the eye sees them.
CONTRAST = """
const channels = (colour) => {
  const [r, g, b, a = 1] = colour.match(/[\\d.]+/g).map(Number);
  return { r, g, b, a };
};
const over = (top, under) => ["r", "g", "b"].reduce(
  (mixed, key) => ({ ...mixed, [key]: top[key] * top.a + under[key] * (1 - top.a) }), { a: 1 });
const luminance = ({ r, g, b }) => [r, g, b]
  .map((value) => value / 255)
  .map((value) => (value <= 0.03928 ? value / 12.92 : ((value + 0.055) / 1.055) ** 2.4))
  .reduce((sum, value, index) => sum + value * [0.2126, 0.7152, 0.0722][index], 0);
const ratio = (one, other) => {
  const [light, dark] = [luminance(one), luminance(other)].sort((x, y) => y - x);
  return (light + 0.05) / (dark + 0.05);
};
const behind = (node) => {
  for (let at = node.parentElement; at; at = at.parentElement) {
    const colour = channels(getComputedStyle(at).backgroundColor);
    if (colour.a > 0) return over(colour, { r: 255, g: 255, b: 255 });
  }
  return { r: 255, g: 255, b: 255, a: 1 };
};
const contrast = (colour, node) => ratio(over(channels(colour), behind(node)), behind(node));
const describe = (node) => node.outerHTML.replace(/\\s+/g, " ").slice(0, 100);
"""
EDGES = (
    "() => {"
    + CONTRAST
    + """
  const fields = "input:not([type=hidden]):not([type=checkbox]):not([type=file]):enabled, "
    + "select:enabled, textarea:enabled";
  const faint = [];
  for (const node of document.querySelectorAll(`${fields}, .switch-track`)) {
    if (!node.getClientRects().length) continue;
    const style = getComputedStyle(node);
    const edge = node.matches(".switch-track") ? style.backgroundColor : style.borderTopColor;
    const found = contrast(edge, node);
    if (found < 3) faint.push(`${describe(node)}: ${found.toFixed(2)}:1`);
  }
  return faint;
}"""
)
# The contrast of the focused control's ring (its switch's, its drop zone's): the best of its
# colours (a ring may be two, a gap and a line); null when nothing has the focus.
FOCUS_RING = (
    "() => {"
    + CONTRAST
    + """
  const node = document.activeElement;
  if (!node || node === document.body) return null;
  const ringed = node.matches(".switch input") ? node.parentElement.querySelector(".switch-track")
    : node.closest(".dropzone") || node;
  const style = getComputedStyle(ringed);
  const colours = style.boxShadow.match(/rgba?\\([^)]*\\)/g) || [];
  if (style.outlineStyle !== "none") colours.push(style.outlineColor);
  const best = Math.max(0, ...colours.map((colour) => contrast(colour, ringed)));
  return { what: describe(node), best };
}"""
)
TABS = 40


def faint_focus(page: Page) -> list[str]:
    """Tab through the page's controls: the ring of each must stand out (3:1)."""
    faint = []
    page.evaluate("document.activeElement && document.activeElement.blur()")
    for _ in range(TABS):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUS_RING)
        if focused is None:
            break
        if focused["best"] < 3:
            faint.append(f"focus ring {focused['best']:.2f}:1 on {focused['what']}")
    return faint


def test_fields_switches_and_the_focus_ring_stand_out(signed_out_page: Page, accounts, http):
    page = signed_out_page
    assert http.post("/api/products", json={"sku": "P-1", "name": "One"}).status_code == 201
    hook = {"url": HOOK_URL, "events": ["product.created"]}
    assert http.post("/api/webhooks", json=hook).status_code == 201
    page.goto("/login")
    found = {"sign-in": page.evaluate(EDGES) + faint_focus(page)}
    sign_in(page, accounts["admin"].email)
    states = {
        "upload": ("/", None),
        "products": ("/products", None),
        "products: the edit form": ("/products", dialog_opened("Edit P-1", "Edit P-1")),
        "webhooks: the edit form": ("/webhooks", dialog_opened(f"Edit {HOOK_URL}", "Edit webhook")),
        "account": ("/account", None),
    }
    for name, (path, then) in states.items():
        page.goto(path)
        settle(page)
        if then:
            then(page)
        page.evaluate(ANIMATIONS_ENDED)
        found[name] = page.evaluate(EDGES) + faint_focus(page)
    found = {name: problems for name, problems in found.items() if problems}
    assert not found, "\n".join(f"{name}: {problem}" for name in found for problem in found[name])


TRACK = (
    "getComputedStyle(document.querySelector('#product-active + .switch-track')).backgroundColor"
)


# Whether the element `shown` looks other than `peer`: what tells the current one apart (a
# background see-through in part is seen over what is behind it).
TOLD_APART = (
    "([shown, peer]) => {"
    + CONTRAST
    + """
  const look = (selector) => {
    const node = document.querySelector(selector);
    const style = getComputedStyle(node);
    const { r, g, b } = over(channels(style.backgroundColor), behind(node));
    return [r, g, b, style.color, style.borderBottomColor, style.textDecorationLine].join();
  };
  return look(shown) !== look(peer);
}"""
)
# On each page, the current one and one of its peers (a bar's fill and its track).
CURRENT = {
    "/products?per_page=25": [
        (".nav-links a[aria-current=page]", ".nav-links a:not([aria-current])"),
        (".pagination a[aria-current=page]", ".pagination a[data-page]:not([aria-current])"),
    ],
    "/imports/{job}": [(".tab[aria-selected=true]", ".tab[aria-selected=false]")],
    "/?job={job}": [(".progress-bar", ".progress")],
}


def test_in_forced_colours_the_focus_a_switch_and_the_current_one_still_show(page: Page, http):
    """Windows' contrast themes repaint the page in a few colours and draw no box shadow: the
    focus, a switch's state, the page, tab and page number one is on, and a bar's progress
    must still show."""
    rows = "\n".join(f"P-{n:02},Product {n}" for n in range(2, 30))
    job = import_csv(http, f"sku,name\n{rows}\n")["id"]
    product = {"sku": "P-1", "name": "One", "active": False}
    assert http.post("/api/products", json=product).status_code == 201
    page.emulate_media(forced_colors="active")
    found = []
    for path, pairs in CURRENT.items():
        page.goto(path.format(job=job))
        settle(page)
        for shown, peer in pairs:
            expect(page.locator(peer).first).to_be_attached()
            if not page.evaluate(TOLD_APART, [shown, peer]):
                found.append(f"{path}: {shown} looks like {peer}")
    for path in ("/", "/products"):
        page.goto(path)
        settle(page)
        found += [f"{path}: {problem}" for problem in faint_focus(page)]
    dialog_opened("Edit P-1", "Edit P-1")(page)
    page.evaluate(ANIMATIONS_ENDED)
    found += [f"the edit form: {problem}" for problem in faint_focus(page)]
    off = page.evaluate(TRACK)
    page.get_by_role("switch", name="Active").check()
    page.evaluate(ANIMATIONS_ENDED)  # the track's colour changes in a transition
    if page.evaluate(TRACK) == off:
        found.append(f"the switch looks the same on and off: {off}")
    assert not found, "\n".join(found)


def test_a_refused_sign_in_is_read_out_with_the_field_the_page_opens_on(
    signed_out_page: Page, accounts
):
    page = signed_out_page
    page.goto("/login")
    page.get_by_label("Email").fill(accounts["viewer"].email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()

    email = page.get_by_label("Email")
    expect(email).to_be_focused()
    expect(email).to_have_accessible_description(
        "That email and password do not match an active account."
    )


def test_a_refused_setup_opens_on_the_field_refused_which_reads_out_why(signed_out_page: Page, app):
    page = signed_out_page
    page.goto(setup_link(app))
    page.get_by_label("Email").fill("first@example.test")
    page.get_by_label("Password (at least 10 characters)").fill("short")
    page.get_by_label("Password again").fill("short")
    page.get_by_role("button", name="Create the admin account").click()

    password = page.get_by_label("Password (at least 10 characters)")
    expect(password).to_be_focused()
    expect(password).to_have_accessible_description("Use at least 10 characters.")
