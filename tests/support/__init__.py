"""Test helpers without pytest, shared by the tests and the benchmark (`bench/`).

support/stack.py    starting `serve`, `up` and `workers` on free ports; Running; worker processes
support/images.py   image bytes: Pillow fixtures, and hand-built hostile containers and bombs
support/http.py     raw HTTP on a socket, multipart bodies, upload and listing calls, assert_error
support/checks.py   after a test: the store is clean, nothing written outside its folders
support/browser.py  for the Chromium tests: console watch, synthetic drop and paste, axe-core

The tests import `support.…` (pytest puts tests/ on sys.path); the benchmark imports
`tests.support.…` from the checkout's root. pytest-only parts (need(), fixtures, hooks) stay
in tests/conftest.py.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent  # the checkout
