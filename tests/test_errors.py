"""The error-code catalogue (errors.py) is the one source: every raise site names a class, and
the README's table, nginx's own JSON answers and the frontend's codes agree with it."""

import ast
import json
import re
from pathlib import Path

import pytest

from imagehost import config, errors, front

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "imagehost"
JS = SRC / "web" / "js"
# Codes the frontend makes itself, for answers that never came or could not be read.
CLIENT_CODES = {"network", "server_error", "http_error", "bad_response", "aborted"}


def _readme_table() -> set[tuple[int, str]]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| status | code | when |") :].split("\n\n", 1)[0]
    rows = set()
    for line in table.splitlines()[2:]:
        status, codes, _ = line.strip("|").split("|", 2)
        rows |= {(int(status), code) for code in re.findall(r"`([a-z_]+)`", codes)}
    return rows


def _js_array(path: Path, name: str) -> list[str]:
    found = re.search(rf"const {name} = \[(.*?)\];", path.read_text(), re.S)
    assert found, f"{name} not found in {path.name}"
    return re.findall(r'"([a-z_]+)"', found.group(1))


def _js_object_values(path: Path, name: str) -> list[str]:
    found = re.search(rf"const {name} = \{{(.*?)\}};", path.read_text(), re.S)
    assert found, f"{name} not found in {path.name}"
    return re.findall(r':\s*"([a-z_]+)"', found.group(1))


def _js_object_keys(path: Path, name: str) -> list[str]:
    found = re.search(rf"const {name} = \{{(.*?)\}};", path.read_text(), re.S)
    assert found, f"{name} not found in {path.name}"
    return re.findall(r"^\s*([a-z_]+):", found.group(1), re.M)


def test_codes_are_unique_and_complete():
    assert len(errors.CODES) >= 30
    for code, error in errors.CODES.items():
        assert error.code == code and 400 <= error.status <= 599, error
        assert error.detail.endswith("."), error  # a sentence
    with pytest.raises(TypeError, match="defined twice"):
        type("Again", (errors.ApiError,), {"code": "not_found"})


def test_raise_sites_name_the_class_not_a_code_string():
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and any(k.arg == "code" for k in node.keywords):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def test_readme_table_is_the_catalogue():
    assert _readme_table() == {(e.status, code) for code, e in errors.CODES.items()}


def test_nginx_answers_come_from_the_catalogue(tmp_path):
    template = front.TEMPLATE.read_text()
    assert '"code"' not in template  # no hand-written error body
    settings = config.load(
        {"DATA_DIR": str(tmp_path / "data"), "IMAGES_DIR": str(tmp_path / "i")}, env_file=None
    )
    rendered = front.render(settings)
    bodies = re.findall(r"return (\d{3}) '(.*?)\\n';", rendered)
    assert bodies, "no JSON answers in the rendered config"
    for status, body in bodies:
        answer = json.loads(body)
        error = errors.CODES[answer["code"]]
        assert (int(status), answer["detail"]) == (error.status, error.detail)
    sent = {json.loads(body)["code"] for _, body in bodies}
    assert {"bad_gateway", "gateway_timeout", "too_large", "not_found"} <= sent
    nginx_only = {code for code, e in errors.CODES.items() if e.nginx_only}
    assert nginx_only <= sent


def test_frontend_retries_exactly_the_retryable_codes():
    listed = set(_js_array(JS / "messages.js", "RETRYABLE"))
    server_side = listed - CLIENT_CODES
    assert server_side == {code for code, e in errors.CODES.items() if e.retryable}


def test_frontend_knows_only_real_codes():
    titles = set(_js_object_keys(JS / "messages.js", "UPLOAD_TITLES"))
    hints = set(_js_object_keys(JS / "messages.js", "UPLOAD_HINTS"))
    by_status = set(_js_object_values(JS / "api.js", "CODE_BY_STATUS"))
    for codes in (titles, hints, by_status):
        assert codes - CLIENT_CODES <= set(errors.CODES), codes - CLIENT_CODES - set(errors.CODES)
