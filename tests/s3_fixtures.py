"""Pytest fixtures for tests of checkpoints on S3: moto's S3 server on loopback.

``s3_server`` is one ``ThreadedMotoServer`` on 127.0.0.1 (a free port) for the session,
with fsspec's ``s3`` configuration pointed at it; ``s3_bucket`` is a fresh bucket per
test, returned as ``s3://<bucket>``. Skipped, saying why, when moto or s3fs is missing
(``pip install -e '.[dev]'`` installs both).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

__all__ = ["fsspec_s3_env", "s3_bucket", "s3_server"]

_CREDENTIALS = {"key": "testing", "secret": "testing"}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server that fsspec's ``s3://`` reaches."""
    server_mod = pytest.importorskip(
        "moto.server", reason="moto[server] is not installed: pip install -e '.[dev]'")
    pytest.importorskip("s3fs", reason="s3fs is not installed: pip install -e '.[dev]'")
    import fsspec.config

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    previous = fsspec.config.conf.get("s3")
    fsspec.config.conf["s3"] = _settings(endpoint)
    try:
        yield endpoint
    finally:
        _restore(fsspec.config.conf, previous)
        server.stop()


def _settings(endpoint: str) -> dict[str, Any]:
    return {"endpoint_url": endpoint, **_CREDENTIALS,
            "client_kwargs": {"region_name": "us-east-1"}}


def fsspec_s3_env(endpoint: str) -> dict[str, str]:
    """The environment that points a child process's ``s3://`` at the server: fsspec
    reads ``FSSPEC_S3`` (a JSON object of S3FileSystem arguments) at import."""
    return {"FSSPEC_S3": json.dumps(_settings(endpoint))}


def _restore(conf: dict[str, Any], previous: Any) -> None:
    if previous is None:
        conf.pop("s3", None)
    else:
        conf["s3"] = previous


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """A new, empty bucket on the moto server, as ``s3://<name>``."""
    import boto3

    name = f"cp-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                          aws_access_key_id=_CREDENTIALS["key"],
                          aws_secret_access_key=_CREDENTIALS["secret"])
    client.create_bucket(Bucket=name)
    return f"s3://{name}"
