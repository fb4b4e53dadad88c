"""Every page, as each role and at a desktop's and a phone's width, in the states a person meets.

A sweep: each page is loaded with a catalog, imports, webhooks and accounts that fill every part
of it (long values included), and checked for what a person would notice: a page that scrolls
sideways or clips its content, an error in the console, a request that fails, a control without
a label, a button without a name, or a focus that cannot be seen while tabbing through it.
Each state's screenshot is saved in artifacts/sweep/ (git-ignored), to be looked at.
"""

import json

import pytest
from playwright.sync_api import Page, expect

from tests.helpers import import_csv, wait_for_job

from .conftest import WIDTHS, sign_in

LONG_SKU = "SKU-" + "9" * 120
LONG_NAME = "A very long product name " + "without-any-break-" * 8
LONG_URL = "http://127.0.0.1:9/hooks/" + "a-long-path-segment-" * 6 + "?token=" + "x" * 40
LONG_EMAIL = "someone.with.a.rather.long.address.for.testing@subdomain.example.test"


@pytest.fixture
def everything(http) -> dict:
    """A catalog, imports in each outcome, a webhook with a delivery, accounts and tokens."""
    rows = "\n".join(f"P-{n:03},Product {n},Description {n}" for n in range(60))
    first = import_csv(http, f"sku,name,description\n{rows}\n,no sku,x\n", "catalog.csv")
    product = {"sku": LONG_SKU, "name": LONG_NAME, "description": "word " * 400, "active": False}
    assert http.post("/api/products", json=product).status_code == 201
    changed = "\n".join(f"P-{n:03},Renamed {n}" for n in range(5))
    second = import_csv(http, f"sku,name\n{changed}\nNEW-1,New one\n", "a-file-" * 12 + ".csv")
    failed = import_csv(http, "Item Code,Title\nX-1,Thing\n", "no-sku.csv")
    planned = import_csv(http, "sku,name\nP-001,Planned\nPLAN-1,Plan\n", data={"plan": "true"})
    undo = http.post(f"/api/imports/{second['id']}/undo").json()
    undo = wait_for_job(http, undo["id"])
    events = ["product.created", "import.completed"]
    hook = {"url": LONG_URL, "events": events, "description": "ERP " * 20}
    response = http.post("/api/webhooks", json=hook)
    assert response.status_code == 201, response.text
    webhook = response.json()
    http.post(f"/api/webhooks/{webhook['id']}/test")  # refused: a failed delivery to show
    http.post("/api/users", json={"email": LONG_EMAIL, "role": "editor"})
    http.post("/api/tokens", json={"name": "A token named at length " * 4, "role": "viewer"})
    return {
        "completed": first,
        "updated": second,
        "failed": failed,
        "planned": planned,
        "undo": undo,
        "webhook": webhook,
    }


def pages(found: dict) -> dict[str, str]:
    """Each page to visit, by a short name."""
    return {
        "upload": "/",
        "upload-planned": f"/?job={found['planned']['id']}",
        "upload-failed": f"/?job={found['failed']['id']}",
        "imports": "/imports",
        "import-completed": f"/imports/{found['completed']['id']}",
        "import-updated": f"/imports/{found['updated']['id']}",
        "import-failed": f"/imports/{found['failed']['id']}",
        "import-planned": f"/imports/{found['planned']['id']}",
        "import-undo": f"/imports/{found['undo']['id']}",
        "products": "/products",
        "products-page-2": "/products?page=2",
        "products-none": "/products?sku=nothing-matches",
        "webhooks": "/webhooks",
        "webhooks-deliveries": "/webhooks?then=deliveries",
        "account": "/account",
        "users": "/users",
        "audit": "/audit",
    }


# What each role never sees: the pages above it, and the buttons of what it may not do.
BELOW = {
    "viewer": {"users", "audit"},
    "editor": {"users", "audit"},
    "admin": set(),
}
NOT_FOR_VIEWERS = [
    "New product",
    "Edit",
    "Delete",
    "Retry",
    "Apply",
    "Discard",
    "Undo this import",
    "Cancel",
    "Import with these columns",
    "Add webhook",
    "Test",
    "Redeliver",
    "Import another file",
]
NOT_FOR_EDITORS = ["Delete all products", "Add webhook", "Test", "Redeliver"]
FORBIDDEN = {"viewer": NOT_FOR_VIEWERS, "editor": NOT_FOR_EDITORS, "admin": [], "signed-out": []}
# The pages a role's view differs on; an admin's sweep visits them all.
BY_ROLE = [
    "upload",
    "upload-failed",
    "imports",
    "import-planned",
    "import-failed",
    "products",
    "webhooks-deliveries",
]

# What a person sees wrong on a page, as found by a script in the page.
PROBLEMS = """() => {
  const problems = [];
  const visible = (node) => node.offsetParent !== null || node.getClientRects().length > 0;
  const describe = (node) => node.outerHTML.slice(0, 120);
  if (document.scrollingElement.scrollWidth > window.innerWidth)
    problems.push(`scrolls sideways: ${document.scrollingElement.scrollWidth}px`);
  // Hidden on purpose: for screen readers only (a stacked table's header), or clipped to a dot.
  const hiddenOnPurpose = (node) => {
    for (let at = node; at; at = at.parentElement) {
      const style = getComputedStyle(at);
      if (style.clip !== "auto" && style.clip !== "" || at.matches(".visually-hidden")) return true;
    }
    return false;
  };
  for (const node of document.querySelectorAll("body *")) {
    if (!visible(node) || hiddenOnPurpose(node)) continue;
    const style = getComputedStyle(node);
    const overflows = node.scrollWidth > node.clientWidth + 1;
    const intended = style.textOverflow === "ellipsis" || node.matches(".progress");
    if (["hidden", "clip"].includes(style.overflowX) && !intended && overflows)
      problems.push(`clips its content: ${describe(node)}`);
    if (["auto", "scroll"].includes(style.overflowX) && overflows)
      problems.push(`scrolls sideways inside: ${describe(node)}`);
    const box = node.getBoundingClientRect();
    const scroller = node.parentElement && node.parentElement.closest(".table-wrap");
    if (box.width && box.right > window.innerWidth + 1 && !scroller && style.position !== "fixed")
      problems.push(`runs past the right edge: ${describe(node)}`);
  }
  for (const control of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (!visible(control) && !control.closest("label.switch")) continue;
    const named = control.labels.length || control.getAttribute("aria-label")
      || control.getAttribute("aria-labelledby") || control.title;
    if (!named) problems.push(`no label: ${describe(control)}`);
  }
  for (const action of document.querySelectorAll("button, a[href], [role=button]")) {
    if (!visible(action)) continue;
    const name = (action.getAttribute("aria-label") || action.textContent || action.title).trim();
    if (!name) problems.push(`no name: ${describe(action)}`);
  }
  for (const node of document.querySelectorAll("[tabindex]"))
    if (node.tabIndex > 0) problems.push(`tab order changed: ${describe(node)}`);
  // An error a script caught still tells the person something went wrong.
  for (const notice of document.querySelectorAll(".notice-error"))
    problems.push(`error notice: ${notice.textContent}`);
  return problems;
}"""

# Whether the focused element shows that it has the focus (its own ring, or its switch's).
FOCUS_SHOWN = """() => {
  const node = document.activeElement;
  if (!node || node === document.body) return null;
  const shows = (item) => {
    const style = getComputedStyle(item);
    return (style.outlineStyle !== "none" && style.outlineWidth !== "0px")
      || style.boxShadow !== "none";
  };
  const track = node.matches(".switch input")
    ? node.parentElement.querySelector(".switch-track") : null;
  const shown = shows(node) || (track && shows(track))
    || (node.closest(".dropzone") && shows(node.closest(".dropzone")));
  const box = node.getBoundingClientRect();
  const onScreen = box.width > 0 && box.height > 0;
  return { what: node.outerHTML.slice(0, 100), shown: Boolean(shown), onScreen };
}"""

TABS = 12


def focus_problems(page: Page) -> list[str]:
    """Tab through the page's first controls: each must show its focus and be on the screen."""
    problems = []
    page.locator("body").focus()
    page.evaluate("document.activeElement && document.activeElement.blur()")
    for _ in range(TABS):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUS_SHOWN)
        if focused is None:
            break
        if not focused["shown"]:
            problems.append(f"focus not shown: {focused['what']}")
        if not focused["onScreen"]:
            problems.append(f"focus on nothing visible: {focused['what']}")
    return problems


def failed(request, seen: list[str]) -> None:
    """Note a request that failed, except one the browser dropped because the page moved on."""
    # The favicon, or a refresh, still loading when the sweep goes to the next page is aborted
    # by the browser (net::ERR_ABORTED): nothing the server did. A server's error is a response,
    # which the "response" listener below reports.
    if request.failure != "net::ERR_ABORTED":
        seen.append(f"failed: {request.url} {request.failure}")


def watch(page: Page) -> list[str]:
    """Collect the page's console errors, uncaught exceptions and failed requests."""
    seen: list[str] = []
    page.on("console", lambda m: m.type == "error" and seen.append(f"console: {m.text}"))
    page.on("pageerror", lambda error: seen.append(f"exception: {error}"))
    page.on("requestfailed", lambda r: failed(r, seen))
    page.on(
        "response",
        lambda r: r.status >= 400 and seen.append(f"HTTP {r.status}: {r.request.method} {r.url}"),
    )
    return seen


def settle(page: Page) -> None:
    """Wait until the page's tables are filled (each shows it is busy, or "Loading…", until)."""
    expect(page.locator("[aria-busy=true]")).to_have_count(0)
    expect(page.get_by_text("Loading…", exact=True)).to_have_count(0)


def forbidden_buttons(page: Page, role: str) -> list[str]:
    """The buttons on the page that the role may not use."""
    shown = page.locator("button:visible, a.btn:visible").evaluate_all(
        "(nodes) => nodes.map((node) => node.textContent.trim())"
    )
    return [f"offered to the {role}: {name!r}" for name in shown if name in FORBIDDEN[role]]


def sweep(page: Page, role: str, paths: dict[str, str], seen: list[str], shots) -> dict:
    """Visit each page at each width; return what is wrong, by page and width."""
    found = {}
    for name, path in paths.items():
        for label, width in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(path)
            settle(page)
            if path.endswith("?then=deliveries"):  # the list below the table
                page.get_by_role("button", name="Deliveries of").click()
                expect(page.locator("#deliveries-body tr")).not_to_have_count(0)
            problems = page.evaluate(PROBLEMS) + forbidden_buttons(page, role)
            if label == "desktop":  # the focus rings are the same at any width
                problems += focus_problems(page)
            problems += seen
            seen.clear()
            page.screenshot(path=str(shots / f"{role}-{name}-{label}.png"), full_page=True)
            if problems:
                found[f"{role}: {name} at {width} px"] = problems
    return found


def test_every_page_fits_works_and_can_be_used_with_the_keyboard(
    signed_out_page: Page, accounts, everything, artifacts
):
    page = signed_out_page
    shots = artifacts / "sweep"
    shots.mkdir(exist_ok=True)
    seen = watch(page)
    found = sweep(page, "signed-out", {"login": "/login"}, seen, shots)
    for role in ("admin", "editor", "viewer"):
        if role != "admin":
            page.get_by_role("button", name="Sign out").click()
        sign_in(page, accounts[role].email)
        page.wait_for_load_state()  # the start page's scripts, which the next visit would stop
        seen.clear()
        visits = {
            name: path
            for name, path in pages(everything).items()
            if name not in BELOW[role] and (role == "admin" or name in BY_ROLE)
        }
        found.update(sweep(page, role, visits, seen, shots))
    assert not found, json.dumps(found, indent=1)
