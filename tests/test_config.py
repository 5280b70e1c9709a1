"""The settings table: defaults, aliases, .env files, one-line errors, and the docs that list it."""

import re
from pathlib import Path

import pytest

from imagehost import config
from imagehost.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults():
    s = config.load({}, env_file=None)
    assert (s.max_upload_bytes, s.port, s.uploads, s.listing) == (
        5 * 1024 * 1024,
        8080,
        "open",
        "public",
    )
    assert s.allowed_formats == ("jpeg", "png", "gif", "webp", "avif", "heic")
    assert s.web_server_workers >= 1 and s.strip_metadata is True


def test_seed_alias_and_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("LOGS_DIR=/var/log/x\nWEB_SERVER_WORKERS=4\nMAX_UPLOAD_MB=7\n")
    s = config.load({"MAX_UPLOAD_MB": "9"}, env_file=env_file)
    assert s.log_dir == Path("/var/log/x") and s.web_server_workers == 4
    assert s.max_upload_mb == 9  # the environment wins over the file
    assert s.worker_ports == [8000, 8001, 8002, 8003]


@pytest.mark.parametrize(
    "name, value",
    [
        ("MAX_UPLOAD_MB", "0"),
        ("PORT", "http"),
        ("UPLOADS", "everyone"),
        ("ALLOWED_FORMATS", "jpeg,svg"),
        ("STRIP_METADATA", "maybe"),
        ("ADMIN_KEY", "short"),
        ("PUBLIC_URL", "ftp://x"),
        ("WEB_SERVER_WORKERS", "0"),
    ],
)
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ConfigError) as info:
        config.load({name: value}, env_file=None)
    assert str(info.value).startswith(f"{name}={value!r}: ")
    assert "\n" not in str(info.value)


def test_port_range_must_fit():
    with pytest.raises(ConfigError, match="WEB_SERVER_START_PORT"):
        config.load({"WEB_SERVER_START_PORT": "65535", "WEB_SERVER_WORKERS": "2"}, env_file=None)


def test_formats_accept_jpg_alias():
    assert config.load({"ALLOWED_FORMATS": "jpg, png"}, env_file=None).allowed_formats == (
        "jpeg",
        "png",
    )


def test_settings_round_trip_through_environ():
    s = config.load({"ALLOWED_FORMATS": "png", "STRIP_METADATA": "false"}, env_file=None)
    assert config.load(s.as_environ(), env_file=None) == s
    timed = config.load({"DEFAULT_EXPIRY": "PT1H", "MAX_EXPIRY": "P1W"}, env_file=None)
    assert (timed.default_expiry, timed.max_expiry) == (3600, 7 * 86400)
    assert config.load(timed.as_environ(), env_file=None) == timed


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, (None, None)),
        ({"DEFAULT_EXPIRY": "86400"}, (86400, None)),
        ({"DEFAULT_EXPIRY": "never", "MAX_EXPIRY": ""}, (None, None)),
        ({"MAX_EXPIRY": "P30D"}, (30 * 86400, 30 * 86400)),  # the maximum is then the default
        ({"DEFAULT_EXPIRY": "PT10M", "MAX_EXPIRY": "PT1H"}, (600, 3600)),
    ],
)
def test_expiry_settings(environ, expected):
    s = config.load(environ, env_file=None)
    assert (s.default_expiry, s.max_expiry) == expected


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"DEFAULT_EXPIRY": "tomorrow"}, "DEFAULT_EXPIRY='tomorrow': must be whole seconds"),
        ({"MAX_EXPIRY": "0"}, "MAX_EXPIRY='0': must be at least 1 second"),
        ({"MAX_EXPIRY": "P1000Y"}, "at most 100 years"),
        ({"DEFAULT_EXPIRY": "P2D", "MAX_EXPIRY": "P1D"}, "DEFAULT_EXPIRY='P2D': must not exceed"),
        ({"DEFAULT_EXPIRY": "never", "MAX_EXPIRY": "P1D"}, "DEFAULT_EXPIRY=never: must not"),
    ],
)
def test_bad_expiry_settings_name_the_setting(environ, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.load(environ, env_file=None)


def test_every_setting_is_documented():
    sample = (ROOT / ".env.sample").read_text()
    readme = (ROOT / "README.md").read_text()
    assert sample.strip() == config.env_sample().strip(), "regenerate: imagehost settings"
    for setting in config.TABLE:
        assert f"`{setting.name}`" in readme, setting.name
