#!/usr/bin/env python3
"""Read-path benchmark: sfetl (release) against `sfetl simulate --scale N` on this machine.

Prints, per run: rows, wall seconds, rows/s, CPU seconds (user+sys of the sfetl process only),
CPU µs per record, MB of CSV decoded and MB/s, peak RSS of sfetl, API calls (from the
simulator's /__sim/stats), the simulator's own CPU seconds over the run (it renders and
compresses every page as it is downloaded, on the same cores: when it nears the wall-clock, the
simulator, not sfetl, sets the pace) and, for Parquet, the MB of files written. Runs: Account with the 7
benchmark fields and with all fields, as RECORD lines (to /dev/null) and as Parquet (zstd, the
default codec, and snappy: what a file's codec costs in CPU against what it saves in bytes);
Contact+Lead (5M rows at the default scale) to
Parquet for memory; Account with 7 and with all fields as a full refresh into a new Delta table
(its files are counted as Parquet's); the people mapping's `account` stream against the same
fields unmapped; an
incremental run after 1,000 Accounts change; Contact+Lead as RECORDs and as Parquet for memory at 5M rows.

    benches/read_bench.py [--scale 1000000 | --scales 200000,1000000] [--bin PATH]
                          [--runs 3] [--baseline-bin OLD] [--only TEXT]

With --airbyte-python PY (the python of a venv holding PyPI's `airbyte-source-salesforce`:
`python3 -m venv V && V/bin/pip install airbyte-source-salesforce`), Airbyte's own Salesforce
source also reads all Account fields to RECORDs from the same simulator
(benches/airbyte_salesforce.py points its login at the simulator), once per scale or, with
--airbyte-runs N, after each of the first N rounds of sfetl's runs (so the host's drift over the
minutes an Airbyte read takes hits both alike). The summary's "vs Airbyte" ratio is taken against
the median of those measured figures; without it, against the 811 µs/row quoted in issue 17
(measured on an earlier day, machine and version of the source).

With several --scales, one simulator per scale runs for the whole bench and every round runs
each scale in turn, so the machine's drift hits the small and the large reads alike.

Builds `cargo build --release` unless --bin is given. With --baseline-bin, every run is made
with both binaries in turn (new, old, new, old, ...) against one simulator, so drift in the
machine's speed hits both alike; with --runs N each run is repeated N times and a summary gives
the min and median of CPU µs/row and wall-clock, and the peak RSS, per binary. Run by hand
(minutes), not in CI.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.error
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


def next_second(base):
    """Waits until the org's clock has left the second of its last change: stamps are whole
    seconds, so a read sees a change from the next second on. An older simulator, stamping
    milliseconds, has no such call and needs none."""
    try:
        post(base, "/__sim/next_second", {})
    except urllib.error.HTTPError as e:
        if e.code != 404:
            raise


ONLY = None
SKIP = []
# Figures of every run: (scale, label, binary tag) -> [dict].
RESULTS = {}
# The binaries of this invocation: [(tag, path)]; each run is made with each in turn.
BINS = []
SCALE = 0
# The simulator's process (Linux: its CPU time is read from /proc around each run).
SIM_PID = None
# Airbyte's Salesforce source, all Account fields -> RECORDs, 200k rows (issue 17), quoted when
# the source is not run.
AIRBYTE_US_PER_ROW = 811.0
# The label of the run Airbyte's source makes too (its figures go to RESULTS with tag "airbyte").
AIRBYTE_LABEL = "Account all fields -> records"


def run(_bin, label, cfg, cat, base, tmp, state=None, fresh=False):
    """Runs `label` once with every binary of BINS; returns the first binary's messages. With
    `fresh`, the output path is removed before each binary's run (every run then writes into
    nothing, as a first read does)."""
    if ONLY and ONLY not in label or any(x in label for x in SKIP):
        return []
    first = None
    for tag, bin_ in BINS:
        if fresh:
            shutil.rmtree(cfg["output"]["path"], ignore_errors=True)
        msgs, fig = run_one(bin_, f"{label} [{tag}]", cfg, cat, base, tmp, state)
        RESULTS.setdefault((SCALE, label, tag), []).append(fig)
        first = msgs if first is None else first
    return first


def run_one(bin_, label, cfg, cat, base, tmp, state=None):
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
    export = cfg.get("output", {}).get("path")
    files0 = parquet_files(export)
    calls0 = stats(base)
    sim0 = sim_cpu()
    with open(out_path, "wb") as out, open(os.path.join(tmp, "stderr.txt"), "wb") as err:
        # RECORDs: keep the protocol lines that are not RECORDs for the figures, drop the RECORDs.
        filt = ["grep", "-v", '^{"type":"RECORD"'] if records else None
        status, usage, wall = through_pipe(args, filt, out, err)
    calls = stats(base) - calls0
    sim_s = sim_cpu() - sim0 if sim0 is not None else None
    assert status == 0, open(os.path.join(tmp, "stderr.txt")).read()
    # The Parquet files this run wrote (new, or rewritten since the run before).
    pq_mb = sum(size for f, (size, t) in parquet_files(export).items() if files0.get(f) != (size, t)) / 1e6
    msgs = [json.loads(line) for line in open(out_path) if line.startswith("{")]
    rows = sum(m["state"]["sourceStats"]["recordCount"] for m in msgs if m["type"] == "STATE")
    # A reconciliation's figures are per Id compared (its rows delivered are the few deleted).
    compared = [int(x) for m in msgs if m["type"] == "LOG"
                for x in re.findall(r"compared the ([0-9]+) Ids of the export", m["log"]["message"])]
    rows = sum(compared) or rows
    mb = sum(float(x) for m in msgs if m["type"] == "LOG"
             for x in re.findall(r"([0-9.]+) MB of CSV", m["log"]["message"]))
    cpu = usage.ru_utime + usage.ru_stime
    print(f"{label:<44} {int(rows):>9} rows {wall:7.2f} s {rows / wall:>10,.0f} rows/s  CPU {cpu:6.2f} s "
          f"{cpu / max(rows, 1) * 1e6:6.2f} µs/row  {mb:8.1f} MB CSV {mb / cpu if cpu else 0:7.1f} MB/s/CPU  "
          f"RSS {usage.ru_maxrss / 1024:6.0f} MB  API calls {calls}"
          + ("" if sim_s is None else f"  simulator CPU {sim_s:.2f} s")
          + ("" if records else f"  Parquet {pq_mb:.1f} MB"), flush=True)
    fig = {"rows": int(rows), "wall": wall, "cpu": cpu, "us": cpu / max(rows, 1) * 1e6,
           "mbs": mb / cpu if cpu else 0.0, "rss": usage.ru_maxrss / 1024, "calls": calls,
           "pq_mb": None if records else pq_mb, "sim": sim_s}
    return msgs, fig


def sim_cpu():
    """CPU seconds (user+sys) the simulator has used so far; None where /proc cannot tell."""
    try:
        with open(f"/proc/{SIM_PID}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parquet_files(root):
    """The Parquet files under `root` (None: none), path -> (size, mtime)."""
    found = {}
    if not root:
        return found
    for d, _, names in os.walk(root):
        for n in names:
            if n.endswith(".parquet"):
                st = os.stat(os.path.join(d, n))
                found[os.path.join(d, n)] = (st.st_size, st.st_mtime_ns)
    return found


def through_pipe(args, filt, out, err):
    """Runs `args` with its stdout read through the command `filt` into `out` (as an orchestrator
    reads it; straight into `out` when `filt` is None); returns its exit status, its rusage and the
    wall-clock seconds until both end."""
    t0 = time.time()
    proc = subprocess.Popen(args, stdout=out if filt is None else subprocess.PIPE, stderr=err)
    if filt is not None:
        reader = subprocess.Popen(filt, stdin=proc.stdout, stdout=out)
        proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    if filt is not None:
        reader.wait()
    return status, usage, time.time() - t0


def airbyte_measured():
    """Airbyte's source as this invocation measured it: scale -> [µs/row of each run]."""
    return {scale: [f["us"] for f in figs] for (scale, label, tag), figs in RESULTS.items() if tag == "airbyte"}


def summary():
    """Min and median per run and binary, as a Markdown table."""
    measured = airbyte_measured()
    print("\n| run | rows | binary | runs | CPU µs/row min | median | wall s min | median "
          "| MB CSV/CPU-s median | peak RSS MB max | Parquet MB | simulator CPU s median | vs Airbyte |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (scale, label, tag), figs in RESULTS.items():
        us = [f["us"] for f in figs]
        wall = [f["wall"] for f in figs]
        med = statistics.median(us)
        airbyte = statistics.median(measured.get(scale, [AIRBYTE_US_PER_ROW]))
        vs = (f"{airbyte / med:.0f}× less CPU" if AIRBYTE_LABEL in label and med
              and tag != "airbyte" else "")
        pq = [f["pq_mb"] for f in figs if f.get("pq_mb") is not None]
        pq = f"{statistics.median(pq):.1f}" if pq else ""
        sim = [f["sim"] for f in figs if f.get("sim") is not None]
        sim = f"{statistics.median(sim):.2f}" if sim else ""
        print(f"| {label} | {figs[0]['rows']:,} | {tag} | {len(figs)} | {min(us):.2f} | {med:.2f} | "
              f"{min(wall):.2f} | {statistics.median(wall):.2f} | {statistics.median(f['mbs'] for f in figs):.0f} | "
              f"{max(f['rss'] for f in figs):.0f} | {pq} | {sim} | {vs} |")
    if measured:
        for scale, us in measured.items():
            print(f"\nAirbyte's Salesforce source (run here {len(us)}×, at --scale {scale}): "
                  f"{min(us):.1f} / {statistics.median(us):.1f} µs/row (min / median), all Account fields -> RECORDs.")
    else:
        print(f"\nAirbyte's Salesforce source (quoted, not run): {AIRBYTE_US_PER_ROW:.0f} µs/row, "
              "all Account fields -> RECORDs, 200k rows.")


def hot_text_drift(root, bin_):
    """How many names of link/hot-text.txt the binary lacks. A generic instance's name hashes its
    type arguments, closures and async blocks among them, which are numbered by their place in
    the code, so the list drifts as the read path changes; a missing name is a hot function the
    linker places away from the others, and the read's code then holds more memory (two wide
    streams as RECORDs: 9.2 MB of code resident with 1,001 of 12,779 names missing, 4.2 MB once
    regenerated). Printed first so a bench's RSS figures say whether the list was current."""
    listed = set(open(os.path.join(root, "link", "hot-text.txt")).read().split())
    # nm's lines are read one at a time and only listed names kept: the names of a 1 GB binary
    # held at once took this process to 180 MB, and a process forked from it starts its peak
    # RSS there (every figure of the bench read 184 MB).
    found = set()
    try:
        with subprocess.Popen(["nm", "--defined-only", bin_], stdout=subprocess.PIPE, text=True) as nm:
            for line in nm.stdout:
                name = line.rsplit(" ", 1)[-1].rstrip("\n")
                if name in listed:
                    found.add(name)
    except OSError:
        return
    if nm.returncode != 0:
        return
    missing = len(listed) - len(found)
    print(f"link/hot-text.txt: {missing:,} of {len(listed):,} names are not in {bin_}"
          + (" (regenerate it: scripts/hot_text.py)" if missing > len(listed) // 50 else ""), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=1_000_000)
    ap.add_argument("--scales", help="comma-separated scales run one after the other (e.g. 200000,1000000); overrides --scale")
    ap.add_argument("--bin")
    ap.add_argument("--only", help="run only the runs whose label contains this text")
    ap.add_argument("--sim-bin", help="the binary whose `simulate` serves the org (default: --bin), to compare two builds against one simulator")
    ap.add_argument("--runs", type=int, default=1, help="repeat every run this many times (summary: min and median)")
    ap.add_argument("--baseline-bin", help="an older sfetl binary run interleaved with the new one on every run")
    ap.add_argument("--airbyte-python", help="python of a venv with airbyte-source-salesforce: run Airbyte's own "
                    "source on all Account fields -> RECORDs and compare against it")
    ap.add_argument("--airbyte-runs", type=int, default=1, help="with --airbyte-python: run Airbyte's source after "
                    "each of the first N rounds of runs (default 1; each takes minutes)")
    ap.add_argument("--skip", help="comma-separated texts: leave out the runs whose label contains any")
    a = ap.parse_args()
    global ONLY, SKIP
    ONLY = a.only
    SKIP = [x for x in (a.skip or "").split(",") if x]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bin_ = a.bin
    if not bin_:
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
        subprocess.run(["cargo", "build", "--release", "--bin", "sfetl"], cwd=root, check=True)
        bin_ = os.path.join(target, "release", "sfetl")
    BINS.append(("new", bin_))
    hot_text_drift(root, bin_)
    if a.baseline_bin:
        BINS.append(("old", a.baseline_bin))
    scales = [int(x) for x in a.scales.split(",")] if a.scales else [a.scale]
    # One simulator per scale for the whole bench, and every round runs each scale in turn: the
    # machine's drift over the minutes of a bench then hits 200k and 1M rows alike, which
    # matters for comparing their figures.
    global SCALE, SIM_PID
    with contextlib.ExitStack() as stack:
        orgs = [start_org(stack, a.sim_bin or bin_, scale) for scale in scales]
        rounds = max(a.runs, a.airbyte_runs if a.airbyte_python else 0)
        for i in range(rounds):
            for org in orgs:
                SCALE, SIM_PID = org["scale"], org["pid"]
                if i < a.runs:
                    runs(bin_, root, org["cfg"], org["base"], org["tmp"])
                if a.airbyte_python and i < a.airbyte_runs:
                    run_airbyte(a.airbyte_python, root, org["creds"], org["base"], org["tmp"])
    summary()


def start_org(stack, sim_bin, scale):
    """A simulator at `scale` (stopped when `stack` closes), its config and a scratch folder."""
    t0 = time.time()
    sim = subprocess.Popen([sim_bin, "simulate", "--scale", str(scale), "--seed", "1"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    stack.callback(sim.wait)
    stack.callback(sim.terminate)
    creds = json.loads(sim.stdout.readline())
    print(f"simulator at --scale {scale} ready in {time.time() - t0:.1f} s", flush=True)
    tmp = stack.enter_context(tempfile.TemporaryDirectory())
    cfg = {"client_id": creds["client_id"], "client_secret": creds["client_secret"],
           "refresh_token": creds["refresh_token"], "login_url": creds["login_url"],
           "start_date": "2000-01-01", "stream_slice_step": "P3650D", "cursor_lag": "PT0S"}
    return {"scale": scale, "pid": sim.pid, "creds": creds, "base": creds["base_url"], "tmp": tmp, "cfg": cfg}


def run_airbyte(python, root, creds, base, tmp):
    """Airbyte's Salesforce source: discover Account, then read all its fields as RECORDs (through
    a pipe, as sfetl's RECORD runs); CPU = user+sys of the source's process."""
    wrapper = [python, os.path.join(root, "benches", "airbyte_salesforce.py"), creds["login_url"]]
    cfg = {"client_id": creds["client_id"], "client_secret": creds["client_secret"],
           "refresh_token": creds["refresh_token"], "start_date": "2000-01-01T00:00:00Z",
           "is_sandbox": False, "streams_criteria": [{"criteria": "exacts", "value": "Account"}]}
    cfg_path, cat_path = os.path.join(tmp, "airbyte_config.json"), os.path.join(tmp, "airbyte_catalog.json")
    json.dump(cfg, open(cfg_path, "w"))
    found = subprocess.run(wrapper + ["discover", "--config", cfg_path], capture_output=True, text=True, check=True)
    streams = [s for line in found.stdout.splitlines() if line.startswith("{")
               for m in [json.loads(line)] if m["type"] == "CATALOG"
               for s in m["catalog"]["streams"] if s["name"] == "Account"]
    assert streams, "Airbyte's source discovered no Account stream:\n" + found.stderr[-2000:]
    json.dump({"streams": [{"stream": streams[0], "sync_mode": "full_refresh",
                            "destination_sync_mode": "overwrite"}]}, open(cat_path, "w"))
    calls0 = stats(base)
    count_path = os.path.join(tmp, "airbyte_records.txt")
    with open(count_path, "wb") as out:
        status, usage, wall = through_pipe(wrapper + ["read", "--config", cfg_path, "--catalog", cat_path],
                                           ["grep", "-c", '^{"type": *"RECORD"'], out, subprocess.DEVNULL)
    calls = stats(base) - calls0
    rows = int(open(count_path).read().strip() or 0)
    assert status == 0 and rows, f"Airbyte's source failed (status {status}, {rows} rows)"
    cpu = usage.ru_utime + usage.ru_stime
    fields = len(streams[0]["json_schema"]["properties"])
    print(f"{'Airbyte source, ' + AIRBYTE_LABEL:<44} {rows:>9} rows {wall:7.2f} s {rows / wall:>10,.0f} rows/s  "
          f"CPU {cpu:6.2f} s {cpu / rows * 1e6:6.2f} µs/row  {fields} fields  RSS {usage.ru_maxrss / 1024:6.0f} MB  "
          f"API calls {calls}", flush=True)
    RESULTS.setdefault((SCALE, AIRBYTE_LABEL, "airbyte"), []).append(
        {"rows": rows, "wall": wall, "cpu": cpu, "us": cpu / rows * 1e6, "mbs": 0.0, "rss": usage.ru_maxrss / 1024,
         "calls": calls})


def runs(bin_, root, cfg, base, tmp):
    """Every run of the benchmark once (each with every binary)."""
    pq = dict(cfg, output={"format": "parquet", "path": os.path.join(tmp, "export")})
    run(bin_, "Account 7 fields -> records", cfg, catalog([("Account", FIELDS7)]), base, tmp)
    run(bin_, "Account 7 fields -> parquet", pq, catalog([("Account", FIELDS7)]), base, tmp)
    run(bin_, AIRBYTE_LABEL, cfg, catalog([("Account", [])]), base, tmp)
    run(bin_, "Account all fields -> parquet", pq, catalog([("Account", [])]), base, tmp)
    # A full refresh into a Delta table (created anew each run).
    delta = dict(cfg, output={"format": "delta", "path": os.path.join(tmp, "delta")})
    run(bin_, "Account 7 fields -> delta", delta, catalog([("Account", FIELDS7)]), base, tmp, fresh=True)
    run(bin_, "Account all fields -> delta", delta, catalog([("Account", [])]), base, tmp, fresh=True)
    # The codec's share: snappy compresses faster than zstd (level 1, the default) and less.
    snappy = dict(cfg, output=dict(pq["output"], compression="snappy"))
    run(bin_, "Account 7 fields -> parquet (snappy)", snappy, catalog([("Account", FIELDS7)]), base, tmp)
    run(bin_, "Account all fields -> parquet (snappy)", snappy, catalog([("Account", [])]), base, tmp)
    people = [("Contact", ["Id", "Email", "SystemModstamp"]), ("Lead", ["Id", "Email", "SystemModstamp"])]
    run(bin_, "Contact + Lead 3 fields -> parquet", pq, catalog(people), base, tmp)
    # Memory at 5M rows (at --scale 1000000) as RECORDs.
    run(bin_, "Contact + Lead 3 fields -> records", cfg, catalog(people), base, tmp)
    run(bin_, "Contact + Lead all fields -> records", cfg, catalog([("Contact", []), ("Lead", [])]), base, tmp)
    # Parquet's peak memory at 5M wide rows (at --scale 1000000).
    run(bin_, "Contact + Lead all fields -> parquet", pq, catalog([("Contact", []), ("Lead", [])]), base, tmp)
    # Issue 7: the people mapping's `account` stream against the same fields unmapped.
    mapped = dict(pq, mapping=os.path.join(root, "fixtures", "mappings", "people.yaml"))
    run(bin_, "Account 6 fields unmapped -> parquet", pq,
        catalog([("Account", ["Id", "Name", "AnnualRevenue", "BillingCountry", "SystemModstamp", "IsDeleted"])]), base, tmp)
    run(bin_, "account mapped (people.yaml) -> parquet", mapped, catalog([("account", [])]), base, tmp)
    msgs = run(bin_, "Account 7 fields incremental -> parquet (first)", pq,
               catalog([("Account", FIELDS7)], "incremental"), base, tmp)
    state = [m["state"] for m in msgs if m["type"] == "STATE"][-1:]
    if state:
        post(base, "/__sim/touch", {"object": "Account", "count": 1000})
        next_second(base)
        run(bin_, "Account incremental after 1,000 changes", pq,
            catalog([("Account", FIELDS7)], "incremental"), base, tmp, state)
        # Every Id of the export against every Id of the org (µs per Id compared).
        always = dict(pq, reconcile_deletes="always")
        run(bin_, "Account incremental, reconcile_deletes always", always,
            catalog([("Account", FIELDS7)], "incremental"), base, tmp, state)
    # The latest view an analyst (and a reconciliation) reads: one version per Id of every
    # sync above (µs per row of the view), counted, then whole (every column the syncs above
    # wrote) to a Parquet file and as JSON lines.
    export = pq["output"]["path"]
    rows = query(bin_, "sfetl query: count(*) of the latest view of Account", export,
                 'SELECT count(*) AS n FROM "Account"')
    if rows:
        # A lookup of one Id: its filter reaches below the view's sort (µs per lookup).
        first = subprocess.run([BINS[0][1], "query", "--path", export, "--format", "csv",
                                'SELECT min("Id") AS n FROM "Account_history"'],
                               capture_output=True, text=True, check=True).stdout.split()[-1]
        query(bin_, "sfetl query: one Id of the latest view", export,
              f'SELECT count(*) AS n FROM "Account" WHERE "Id" = \'{first}\'')
        out = os.path.join(tmp, "result.parquet")
        query(bin_, "sfetl query: SELECT * of the latest view -> parquet", export,
              'SELECT * FROM "Account"', rows, ["--format", "parquet", "--out", out])
        query(bin_, "sfetl query: SELECT * of the latest view -> json", export,
              'SELECT * FROM "Account"', rows, ["--format", "json"])


def query(_bin, label, path, sql, rows=None, args=("--format", "csv")):
    """Runs `sfetl query` of `sql` over the export at `path` with every binary; without `rows`,
    `sql` answers one row with column n, the rows it returns. Returns the rows."""
    if ONLY and ONLY not in label or any(x in label for x in SKIP) or not os.path.isdir(path):
        return rows
    for tag, bin_ in BINS:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            status, usage, wall = through_pipe([bin_, "query", "--path", path, *args, sql], None, out, err)
            err.seek(0)
            assert status == 0, err.read().decode()
            if rows is None:
                out.seek(0)
                n = int(out.read().decode().split()[-1])
            else:
                n = rows
        cpu = usage.ru_utime + usage.ru_stime
        print(f"{label + ' [' + tag + ']':<44} {n:>9} rows {wall:7.2f} s  CPU {cpu:6.2f} s "
              f"{cpu / max(n, 1) * 1e6:6.2f} µs/row  RSS {usage.ru_maxrss / 1024:6.0f} MB", flush=True)
        RESULTS.setdefault((SCALE, label, tag), []).append(
            {"rows": n, "wall": wall, "cpu": cpu, "us": cpu / max(n, 1) * 1e6, "mbs": 0.0,
             "rss": usage.ru_maxrss / 1024, "calls": 0})
    return n


if __name__ == "__main__":
    main()
