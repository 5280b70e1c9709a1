"""After a test: the store is clean (catalog and folder agree, no temporary file is left) and
nothing was written outside the folders a command owns; what the store holds, in either mode,
seen from outside the server (the files under IMAGES_DIR, or the bucket through boto3)."""

from pathlib import Path

from imagehost import config, maintenance
from imagehost.store import temp_dir

from .seaweed import boto3_client, keys_in
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


def _bucket(running: Running):
    """(a boto3 client, the bucket) of a stack with STORAGE=s3."""
    env = running.env
    client = boto3_client(
        env["S3_ENDPOINT_URL"], env["S3_ACCESS_KEY_ID"], env["S3_SECRET_ACCESS_KEY"]
    )
    return client, env["S3_BUCKET"]


def stored_keys(running: Running) -> set[str]:
    """Every object in the stack's store by key ("{id}.png", "thumbs/{id}.webp"): the files
    under IMAGES_DIR (temporary ones included), or the keys in the bucket."""
    if running.storage == "s3":
        return keys_in(*_bucket(running))
    return tree(running.images_dir) if running.images_dir.exists() else set()


def put_by_hand(running: Running, key: str, data: bytes) -> None:
    """Put an object into the store behind the server's back (a file or a bucket object)."""
    if running.storage == "s3":
        client, bucket = _bucket(running)
        client.put_object(Bucket=bucket, Key=key, Body=data)
        return
    path = running.images_dir / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def remove_by_hand(running: Running, key: str) -> None:
    """Remove what put_by_hand put."""
    if running.storage == "s3":
        client, bucket = _bucket(running)
        client.delete_object(Bucket=bucket, Key=key)
        return
    (running.images_dir / key).unlink(missing_ok=True)
