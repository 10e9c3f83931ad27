#!/usr/bin/env python3
"""Wall-clock of a big Contact read with `max_concurrent_jobs` 1 versus 4, against
`sfetl simulate` with Bulk processing time switched on (each query job waits --queue-ms in the
queue, then handles --rows-per-second matching rows per second before it completes, as a busy
org does; by default the simulator completes jobs at once).

Each run is a first incremental sync of Contact (3 fields) to Parquet with the defaults: one
count query sizes the windows (bulk_max_records rows each), and each window is one Bulk job.
Prints per run: rows, windows (Bulk jobs), wall seconds, CPU seconds of sfetl, peak RSS.

    benches/concurrent_jobs.py [--scale 1666667] [--bin PATH] [--rows-per-second 100000] [--queue-ms 2000]
                               [--bulk-max-records 200000]

--scale N generates 3N Contacts (1,666,667: 5M). Builds `cargo build --release` unless --bin is
given. Run by hand (minutes), not in CI.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
import urllib.request


def get(base, path):
    return json.load(urllib.request.urlopen(base + path))


def run(bin_, creds, jobs, tmp, page):
    export = os.path.join(tmp, f"export-{jobs}")
    cfg = {"client_id": creds["client_id"], "client_secret": creds["client_secret"],
           "refresh_token": creds["refresh_token"], "login_url": creds["login_url"],
           "cursor_lag": "PT0S", "max_concurrent_jobs": jobs, "bulk_max_records": page,
           "output": {"format": "parquet", "path": export}}
    cat = {"streams": [{"stream": {"name": "Contact", "json_schema": {"type": "object", "properties": {
        "Id": {}, "Email": {}, "SystemModstamp": {}}}, "supported_sync_modes": ["incremental"]},
        "sync_mode": "incremental", "destination_sync_mode": "append"}]}
    cfg_path, cat_path = os.path.join(tmp, "config.json"), os.path.join(tmp, "catalog.json")
    json.dump(cfg, open(cfg_path, "w"))
    json.dump(cat, open(cat_path, "w"))
    jobs0 = get(creds["base_url"], "/__sim/limits")["bulk_query_jobs_used"]
    out_path = os.path.join(tmp, "stdout.jsonl")
    t0 = time.time()
    with open(out_path, "wb") as out, open(os.path.join(tmp, "stderr.txt"), "wb") as err:
        proc = subprocess.Popen([bin_, "read", "--config", cfg_path, "--catalog", cat_path], stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - t0
    assert status == 0, open(os.path.join(tmp, "stderr.txt")).read()
    msgs = [json.loads(line) for line in open(out_path)]
    rows = sum(m["state"]["sourceStats"]["recordCount"] for m in msgs if m["type"] == "STATE")
    windows = get(creds["base_url"], "/__sim/limits")["bulk_query_jobs_used"] - jobs0
    cpu = usage.ru_utime + usage.ru_stime
    print(f"max_concurrent_jobs {jobs}: {int(rows):>9} rows  {windows:>3} Bulk jobs  {wall:7.1f} s wall  "
          f"{rows / wall:>9,.0f} rows/s  CPU {cpu:6.1f} s  RSS {usage.ru_maxrss / 1024:5.0f} MB", flush=True)
    return wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=1_666_667)
    ap.add_argument("--bin")
    ap.add_argument("--rows-per-second", type=int, default=100_000)
    ap.add_argument("--queue-ms", type=int, default=2_000)
    ap.add_argument("--bulk-max-records", type=int, default=200_000,
                    help="rows per window (and per results page); the default is sfetl's")
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bin_ = a.bin
    if not bin_:
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
        subprocess.run(["cargo", "build", "--release", "--bin", "sfetl"], cwd=root, check=True)
        bin_ = os.path.join(target, "release", "sfetl")
    t0 = time.time()
    sim = subprocess.Popen([bin_, "simulate", "--scale", str(a.scale), "--seed", "1",
                            "--bulk-rows-per-second", str(a.rows_per_second), "--bulk-queue-ms", str(a.queue_ms)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    creds = json.loads(sim.stdout.readline())
    print(f"simulator at --scale {a.scale} ({3 * a.scale:,} Contacts) ready in {time.time() - t0:.1f} s; "
          f"Bulk jobs queue {a.queue_ms} ms, then {a.rows_per_second:,} rows/s each", flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            one = run(bin_, creds, 1, tmp, a.bulk_max_records)
            four = run(bin_, creds, 4, tmp, a.bulk_max_records)
            print(f"speed-up with 4 concurrent jobs: {one / four:.2f}x")
    finally:
        sim.terminate()
        sim.wait()


if __name__ == "__main__":
    main()
