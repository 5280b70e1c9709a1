"""After a test: the store is clean (catalog and folder agree, no temporary file is left) and
nothing was written outside the folders a command owns."""

from pathlib import Path

from imagehost import config, maintenance
from imagehost.store import temp_dir

from .stack import Running


def check_clean(running: Running) -> None:
    """`imagehost check --dry-run` finds nothing, and no temporary file is left."""
    result = running.cli("check", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    leftovers = list(temp_dir(config.load(running.env, env_file=None)).iterdir())
    assert leftovers == [], leftovers


def assert_store_clean(running: Running) -> None:
    """What `imagehost check --dry-run` reports (run in-process: fast), and no temp file left.

    check_clean runs the real command; this is for the many-cases tables.
    """
    settings = config.load(running.env, env_file=None)
    report = maintenance.check(settings, dry_run=True)
    assert report.clean, report.lines()
    leftovers = list(temp_dir(settings).iterdir())
    assert leftovers == [], leftovers
    body_temp = running.data_dir / "run" / "nginx" / "temp" / "client_body"
    if body_temp.exists():  # nginx's buffered request bodies are gone once answered
        assert list(body_temp.iterdir()) == []


def tree(root: Path) -> set[str]:
    """Every file under `root`, relative, for 'nothing written outside' checks."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
