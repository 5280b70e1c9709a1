"""The upload page as the browser tests see it: locators for its rows, the actions they repeat,
and the axe run; shared by test_ui, test_ui_sharing and test_ui_expiry."""

import re

from playwright.sync_api import expect

from .browser import DROP_FILES_JS

HOSTILE_NAME = "<img src=x onerror=alert(1)>.png"  # markup as a file name: shown as text


def open_upload_page(page, base_url: str, fragment: str = "") -> None:
    page.goto(f"{base_url}/upload.html{fragment}")
    # The hint is rewritten once /api/config has answered: the browser checks are armed.
    expect(page.locator("#dropzone-hint")).to_contain_text("up to")


def upload_row(page, name: str):
    return page.locator("#upload-list > li").filter(
        has=page.locator(".upload-name", has_text=re.compile(f"^{re.escape(name)}$"))
    )


def finished_url(row) -> str:
    """Waits for the row to finish at 100% and returns the URL it shows."""
    expect(row).to_have_attribute("data-state", "done")
    expect(row.locator("progress")).to_have_js_property("value", 100)
    expect(row.locator(".upload-percent")).to_have_text("100%")
    field = row.get_by_label("URL", exact=True)
    expect(field).to_have_value(re.compile(r"^http://.+/images/[A-Za-z0-9_-]{10,}\.png$"))
    return field.input_value()


def image_rows(page):
    return page.locator("#images-body > tr")


def image_row(page, name: str):
    return image_rows(page).filter(
        has=page.locator(".image-name", has_text=re.compile(f"^{re.escape(name)}$"))
    )


def drop(page, *files) -> None:
    page.evaluate(DROP_FILES_JS, ["#dropzone", list(files)])


def run_axe(page, script) -> list[dict]:
    if page.evaluate("typeof window.axe === 'undefined'"):
        page.add_script_tag(path=str(script))
    result = page.evaluate("async () => await axe.run(document)")
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def describe(violations: list[dict]) -> str:
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
        for v in violations
    )
