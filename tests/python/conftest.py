"""Shared fixtures: the sfetl binary and a running `sfetl simulate`."""

import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ["SFETL_BIN"]


@pytest.fixture(scope="module")
def sim():
    """A simulator with 500 Accounts; yields its credentials line."""
    proc = subprocess.Popen(
        [BIN, "simulate", "--scale", "500", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    creds = json.loads(proc.stdout.readline())
    yield creds
    proc.terminate()
    proc.wait(timeout=10)


def sim_config(creds, **extra):
    cfg = {
        "client_id": creds["client_id"],
        "client_secret": creds["client_secret"],
        "refresh_token": creds["refresh_token"],
        "login_url": creds["login_url"],
    }
    cfg.update(extra)
    return cfg


def write_json(path, value):
    path.write_text(json.dumps(value))
    return str(path)


def catalog(stream, fields, mode="full_refresh"):
    return {
        "streams": [
            {
                "stream": {
                    "name": stream,
                    "json_schema": {"type": "object", "properties": {f: {} for f in fields}},
                    "supported_sync_modes": ["full_refresh", "incremental"],
                },
                "sync_mode": mode,
                "destination_sync_mode": "append",
            }
        ]
    }


def run(*args, **kw):
    return subprocess.run([BIN, *args], cwd=ROOT, capture_output=True, timeout=300, **kw)
