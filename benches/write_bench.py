#!/usr/bin/env python3
"""Write-path benchmark: `sfetl write` (release) against `sfetl simulate` on this machine.

100,000 score updates of Leads (the example's `person_scores` route) as RECORD lines on stdin,
one STATE at the end, so they go through Bulk API 2.0 ingest in one job. Prints the API calls
sfetl made (from the simulator's /__sim/stats, token calls excluded), sfetl's CPU seconds
(user+sys of the sfetl process only), wall seconds, and checks a few stored records.

    benches/write_bench.py [--rows 100000] [--bin PATH]

Builds `cargo build --release` unless --bin is given. Run by hand, not in CI.
Targets (issue 8): <= 10 API calls and <= 1 s of sfetl CPU.
"""

import argparse
import json
import os
import resource
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request


def get(url, token=None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    return json.load(urllib.request.urlopen(req))


def post(url, body=None, form=None):
    if form is not None:
        data, ctype = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    else:
        data, ctype = json.dumps(body or {}).encode(), "application/json"
    return json.load(urllib.request.urlopen(urllib.request.Request(url, data, {"Content-Type": ctype})))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--bin")
    # Salesforce takes about 100 MB of CSV per job upload; larger inputs are split into jobs.
    ap.add_argument("--max-upload-bytes", type=int, default=100_000_000)
    a = ap.parse_args()
    bin_ = a.bin
    if not bin_:
        subprocess.run(["cargo", "build", "--release"], check=True)
        target = os.environ.get("CARGO_TARGET_DIR", "target")
        bin_ = os.path.join(target, "release", "sfetl")
    scale = (a.rows + 1) // 2  # the simulator makes 2N Leads
    sim = subprocess.Popen([bin_, "simulate", "--scale", str(scale), "--seed", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        creds = json.loads(sim.stdout.readline())
        base = creds["base_url"]
        token = post(creds["login_url"] + "/services/oauth2/token", form={
            "grant_type": "refresh_token", "refresh_token": creds["refresh_token"],
            "client_id": creds["client_id"], "client_secret": creds["client_secret"]})["access_token"]
        ids = []
        url = base + "/services/data/v62.0/query?q=" + urllib.parse.quote("SELECT Id FROM Lead")
        while len(ids) < a.rows:
            page = get(url, token)
            ids += [r["Id"] for r in page["records"]]
            if page.get("done", True):
                break
            url = base + page["nextRecordsUrl"]
        ids = ids[: a.rows]
        tmp = tempfile.mkdtemp(prefix="sfetl-write-bench-")
        cfg = {"auth_type": "refresh_token", "client_id": creds["client_id"],
               "client_secret": creds["client_secret"], "refresh_token": creds["refresh_token"],
               "login_url": creds["login_url"], "api_version": "62.0",
               "writeback": {"streams": {"person_scores": {"routes": [
                   {"object": "Lead", "when": "source_object = 'Lead'", "operation": "update",
                    "fields": {"Id": "source_id", "Score__c": "score", "Score_Reason__c": "reason"}}]}},
                   "rejects_path": os.path.join(tmp, "rejects"),
                   "max_upload_bytes": a.max_upload_bytes}}
        cat = {"streams": [{"stream": {"name": "person_scores", "supported_sync_modes": ["full_refresh"],
                                       "json_schema": {"type": "object", "properties": {
                                           "source_object": {"type": "string"}, "source_id": {"type": "string"},
                                           "score": {"type": "number"}, "reason": {"type": "string"}}}},
                            "sync_mode": "full_refresh", "destination_sync_mode": "append"}]}
        cfg_path, cat_path, in_path = (os.path.join(tmp, n) for n in ("config.json", "catalog.json", "in.jsonl"))
        json.dump(cfg, open(cfg_path, "w"))
        json.dump(cat, open(cat_path, "w"))
        with open(in_path, "w") as f:
            for i, id_ in enumerate(ids):
                f.write(json.dumps({"type": "RECORD", "record": {"stream": "person_scores", "emitted_at": 0, "data": {
                    "source_object": "Lead", "source_id": id_, "score": (i % 10000) / 100,
                    "reason": f"bench score {i}"}}}) + "\n")
            f.write(json.dumps({"type": "STATE", "state": {"type": "STREAM", "stream": {
                "stream_descriptor": {"name": "person_scores"}, "stream_state": {"done": True}}}}) + "\n")
        csv_bytes = sum(len(f"{id_},{(i % 10000) / 100},bench score {i}\n") for i, id_ in enumerate(ids))
        post(base + "/__sim/stats/reset")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.time()
        with open(in_path, "rb") as stdin:
            out = subprocess.run([bin_, "write", "--config", cfg_path, "--catalog", cat_path],
                                 stdin=stdin, capture_output=True)
        wall = time.time() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if out.returncode != 0:
            raise SystemExit(f"sfetl write failed:\n{out.stderr.decode()}")
        by_kind = get(base + "/__sim/stats")["by_kind"]
        calls = sum(v for k, v in by_kind.items() if k not in ("token", "oauth", "identity"))
        states = [json.loads(l) for l in out.stdout.decode().splitlines() if '"STATE"' in l]
        assert len(states) == 1 and states[0]["state"]["destinationStats"]["recordCount"] == len(ids), states
        for i in (0, len(ids) // 2, len(ids) - 1):
            rec = get(f"{base}/__sim/record/Lead/{ids[i]}")
            assert rec["Score__c"] == (i % 10000) / 100 and rec["Score_Reason__c"] == f"bench score {i}", rec
        jobs = max(1, -(-csv_bytes // a.max_upload_bytes))
        print(f"rows: {len(ids)}; CSV {csv_bytes / 1e6:.1f} MB in {jobs} job(s) of <= {a.max_upload_bytes} bytes")
        print(f"API calls with one 100 MB job (Salesforce's limit): {calls - 5 * (jobs - 1)}")
        print(f"API calls: {calls} ({json.dumps({k: v for k, v in by_kind.items() if v})})")
        print(f"sfetl CPU: {cpu:.3f} s (user+sys), wall {wall:.3f} s, {cpu / len(ids) * 1e6:.2f} µs/row")
        print(out.stderr.decode().strip())
        ok = calls - 5 * (jobs - 1) <= 10 and cpu <= 1.0
        print("targets (<= 10 calls, <= 1 s CPU):", "met" if ok else "NOT met")
    finally:
        sim.terminate()
        sim.wait()


if __name__ == "__main__":
    main()
