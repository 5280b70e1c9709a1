"""For the Chromium tests: files handed to the page, axe-core's location, console watching, and
the JavaScript that builds synthetic drop and paste events."""

import base64
import importlib.util
import os
import re
from pathlib import Path

from . import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = ROOT / "tests" / "screenshots"


def file_payload(name: str, data: bytes, mime: str = "image/png") -> dict:
    """A file for Playwright's set_files."""
    return {"name": name, "mimeType": mime, "buffer": data}


def js_file(name: str, data: bytes, mime: str = "image/png") -> dict:
    """A file description the page scripts below turn into a File."""
    return {"name": name, "type": mime, "b64": base64.b64encode(data).decode()}


def axe_script() -> Path | None:
    """axe.min.js: $AXE_CORE_JS, else the copy bundled by the PyPI package axe-playwright-python,
    else an npm install of axe-core in the repository (node_modules/axe-core/axe.min.js)."""
    explicit = os.environ.get("AXE_CORE_JS")
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    spec = importlib.util.find_spec("axe_playwright_python")
    if spec and spec.origin:
        bundled = Path(spec.origin).parent / "axe.min.js"
        if bundled.is_file():
            return bundled
    npm = ROOT / "node_modules" / "axe-core" / "axe.min.js"
    return npm if npm.is_file() else None


# Builds Files from base64 and dispatches dragenter/dragover/drop on `selector`, as a real drag
# of files from the desktop does.
DROP_FILES_JS = """
([selector, files]) => {
  const transfer = new DataTransfer();
  for (const f of files) {
    const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
    transfer.items.add(new File([bytes], f.name, { type: f.type }));
  }
  const target = document.querySelector(selector);
  for (const type of ["dragenter", "dragover", "drop"]) {
    const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
    target.dispatchEvent(new DragEvent(type, init));
  }
}
"""

# Starts a drag over `selector` without dropping, to see the drop zone react.
DRAG_OVER_JS = """
(selector) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File(["x"], "x.png", { type: "image/png" }));
  const target = document.querySelector(selector);
  for (const type of ["dragenter", "dragover"]) {
    const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
    target.dispatchEvent(new DragEvent(type, init));
  }
}
"""

# A paste (Ctrl+V) of an image, as when a screenshot is on the clipboard.
PASTE_FILES_JS = """
(files) => {
  const transfer = new DataTransfer();
  for (const f of files) {
    const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
    transfer.items.add(new File([bytes], f.name, { type: f.type }));
  }
  document.body.dispatchEvent(
    new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true, cancelable: true }),
  );
}
"""


class ConsoleWatch:
    """Collects console errors and uncaught exceptions of a page."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def assert_clean(self, *allowed: str) -> None:
        """No errors, apart from those matching one of the `allowed` patterns (an expected
        refusal shows up as 'Failed to load resource: … status of 415')."""
        unexpected = [e for e in self.errors if not any(re.search(a, e) for a in allowed)]
        assert not unexpected, "console errors:\n" + "\n".join(unexpected)


def refused(status: int) -> str:
    """The console line Chromium prints for a request answered with `status`."""
    return rf"Failed to load resource: the server responded with a status of {status}\b"
