#!/usr/bin/env python3
"""Read-path benchmark: sfetl (release) against `sfetl simulate --scale N` on this machine.

Prints, per run: rows, wall seconds, rows/s, CPU seconds (user+sys of the sfetl process only),
CPU µs per record, MB of CSV decoded and MB/s, peak RSS of sfetl, and API calls (from the
simulator's /__sim/stats). Runs: Account with the 7 benchmark fields and with all fields, as
RECORD lines (to /dev/null) and as Parquet; Contact+Lead (5M rows at the default scale) to
Parquet for memory; the people mapping's `account` stream against the same fields unmapped; an
incremental run after 1,000 Accounts change.

    benches/read_bench.py [--scale 1000000] [--bin PATH]

Builds `cargo build --release` unless --bin is given. Run by hand (minutes), not in CI.
"""

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request

FIELDS7 = ["Id", "Name", "IsDeleted", "AnnualRevenue", "NumberOfEmployees", "CreatedDate", "SystemModstamp"]


def catalog(streams, mode="full_refresh"):
    return {"streams": [{
        "stream": {"name": name, "json_schema": {"type": "object", "properties": {f: {} for f in fields}},
                   "supported_sync_modes": ["full_refresh", "incremental"]},
        "sync_mode": mode, "destination_sync_mode": "append"} for name, fields in streams]}


def stats(base):
    return json.load(urllib.request.urlopen(base + "/__sim/stats"))["total"]


def post(base, path, body):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))


ONLY = None


def run(bin_, label, cfg, cat, base, tmp, state=None):
    if ONLY and ONLY not in label:
        return []
    cfg_path = os.path.join(tmp, "config.json")
    cat_path = os.path.join(tmp, "catalog.json")
    json.dump(cfg, open(cfg_path, "w"))
    json.dump(cat, open(cat_path, "w"))
    args = [bin_, "read", "--config", cfg_path, "--catalog", cat_path]
    if state is not None:
        state_path = os.path.join(tmp, "state.json")
        json.dump(state, open(state_path, "w"))
        args += ["--state", state_path]
    records = cfg.get("output", {}).get("format", "records") == "records"
    out_path = os.path.join(tmp, "stdout.jsonl")
    calls0 = stats(base)
    t0 = time.time()
    with open(os.devnull if records else out_path, "wb") as out, open(os.path.join(tmp, "stderr.txt"), "wb") as err:
        if records:
            # Keep the protocol lines that are not RECORDs for the figures, drop the RECORDs.
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err)
            filt = subprocess.Popen(["grep", "-v", '^{"type":"RECORD"'], stdin=proc.stdout, stdout=open(out_path, "wb"))
            proc.stdout.close()
        else:
            proc = subprocess.Popen(args, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        if records:
            filt.wait()
    wall = time.time() - t0
    calls = stats(base) - calls0
    assert status == 0, open(os.path.join(tmp, "stderr.txt")).read()
    msgs = [json.loads(line) for line in open(out_path) if line.startswith("{")]
    rows = sum(m["state"]["sourceStats"]["recordCount"] for m in msgs if m["type"] == "STATE")
    mb = sum(float(x) for m in msgs if m["type"] == "LOG"
             for x in re.findall(r"([0-9.]+) MB of CSV", m["log"]["message"]))
    cpu = usage.ru_utime + usage.ru_stime
    print(f"{label:<44} {int(rows):>9} rows {wall:7.2f} s {rows / wall:>10,.0f} rows/s  CPU {cpu:6.2f} s "
          f"{cpu / max(rows, 1) * 1e6:6.2f} µs/row  {mb:8.1f} MB CSV {mb / cpu if cpu else 0:7.1f} MB/s/CPU  "
          f"RSS {usage.ru_maxrss / 1024:6.0f} MB  API calls {calls}")
    return msgs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=1_000_000)
    ap.add_argument("--bin")
    ap.add_argument("--only", help="run only the runs whose label contains this text")
    ap.add_argument("--sim-bin", help="the binary whose `simulate` serves the org (default: --bin), to compare two builds against one simulator")
    a = ap.parse_args()
    global ONLY
    ONLY = a.only
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bin_ = a.bin
    if not bin_:
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
        subprocess.run(["cargo", "build", "--release", "--bin", "sfetl"], cwd=root, check=True)
        bin_ = os.path.join(target, "release", "sfetl")
    t0 = time.time()
    sim = subprocess.Popen([a.sim_bin or bin_, "simulate", "--scale", str(a.scale), "--seed", "1"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    creds = json.loads(sim.stdout.readline())
    base = creds["base_url"]
    print(f"simulator at --scale {a.scale} ready in {time.time() - t0:.1f} s")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = {"client_id": creds["client_id"], "client_secret": creds["client_secret"],
                   "refresh_token": creds["refresh_token"], "login_url": creds["login_url"],
                   "start_date": "2000-01-01", "stream_slice_step": "P3650D", "cursor_lag": "PT0S"}
            pq = dict(cfg, output={"format": "parquet", "path": os.path.join(tmp, "export")})
            run(bin_, "Account 7 fields -> records", cfg, catalog([("Account", FIELDS7)]), base, tmp)
            run(bin_, "Account 7 fields -> parquet", pq, catalog([("Account", FIELDS7)]), base, tmp)
            run(bin_, "Account all fields -> records", cfg, catalog([("Account", [])]), base, tmp)
            run(bin_, "Account all fields -> parquet", pq, catalog([("Account", [])]), base, tmp)
            run(bin_, "Contact + Lead 7 fields -> parquet", pq,
                catalog([("Contact", ["Id", "Email", "SystemModstamp"]), ("Lead", ["Id", "Email", "SystemModstamp"])]), base, tmp)
            # Issue 7: the people mapping's `account` stream against the same fields unmapped.
            mapped = dict(pq, mapping=os.path.join(root, "fixtures", "mappings", "people.yaml"))
            run(bin_, "Account 6 fields unmapped -> parquet", pq,
                catalog([("Account", ["Id", "Name", "AnnualRevenue", "BillingCountry", "SystemModstamp", "IsDeleted"])]), base, tmp)
            run(bin_, "account mapped (people.yaml) -> parquet", mapped, catalog([("account", [])]), base, tmp)
            msgs = run(bin_, "Account 7 fields incremental -> parquet (first)", pq,
                       catalog([("Account", FIELDS7)], "incremental"), base, tmp)
            state = [m["state"] for m in msgs if m["type"] == "STATE"][-1:]
            post(base, "/__sim/touch", {"object": "Account", "count": 1000})
            run(bin_, "Account incremental after 1,000 changes", pq,
                catalog([("Account", FIELDS7)], "incremental"), base, tmp, state)
    finally:
        sim.terminate()
        sim.wait()


if __name__ == "__main__":
    main()
