#!/usr/bin/env python3
"""Delta output benchmark: sfetl against `sfetl simulate --scale N` on this machine.

Runs (each printed as in read_bench.py: rows, wall s, rows/s, CPU s of the sfetl process, CPU
µs/row, peak RSS, API calls):
  1. a full refresh of Account (7 fields) to Parquet, then to Delta (target: Delta within 1.5x
     of Parquet in CPU per row and peak RSS);
  2. 1,000 Accounts changed, spread over the table (the simulator's touch picks every
     N/1000-th row), then an incremental read merged into the Delta table;
  3. 1,000 of the newest Accounts changed (clustered at the end of the Id range, as edits of
     recent records are), then an incremental read.
For 2 and 3 it also prints the bytes of data files the MERGE removed (rewritten) and added,
against the table's size (targets: under 2 s CPU, at most 10% of the bytes rewritten).

With --history it runs instead, for Account with 7 and with all fields, full refreshes into a
table kept with `history: true`: the first fills an empty `Account_history` (appended), then
1,000 Accounts (`--touch N`; 0 for none) change, spread over the table, and a second full
refresh merges into the history only the versions that changed (the 1,000 closed and added
again); the bytes its commit removed and added in `Account_history` are printed. With
--add-field the first refresh reads Account without Name and the second with it, so every
version changes (a field added to the catalog).

With --baseline-bin OLD, each binary keeps a table of its own and every run is made with both
in turn (new, old) against one simulator: the same changes are merged into each table. With
--runs N the whole sequence is repeated N times (tables made anew each time); a summary gives
the min and median per run and binary.

    benches/delta_bench.py [--scale 1000000] [--bin PATH] [--baseline-bin OLD] [--runs N]
                           [--history [--touch N] [--add-field]]

Builds `cargo build --release` unless --bin is given. Run by hand (minutes), not in CI.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time

import read_bench
from read_bench import FIELDS7, catalog, post, run


def log_actions(table, after_version):
    """Bytes of the data files added and removed by the commits after `after_version`, and the
    table's bytes at that version (sum of its live files)."""
    live, added, removed = {}, 0, 0
    for path in sorted(glob.glob(os.path.join(table, "_delta_log", "*.json"))):
        version = int(os.path.basename(path).split(".")[0])
        for line in open(path):
            action = json.loads(line)
            if "add" in action:
                if version > after_version:
                    added += action["add"]["size"]
                else:
                    live[action["add"]["path"]] = action["add"]["size"]
            elif "remove" in action:
                if version > after_version:
                    removed += action["remove"].get("size") or 0
                else:
                    live.pop(action["remove"]["path"], None)
    return sum(live.values()), added, removed


def newest_version(table):
    return max(int(os.path.basename(p).split(".")[0]) for p in glob.glob(os.path.join(table, "_delta_log", "*.json")))


def incremental(label, cfgs, base, tmp, body):
    """Changes rows as `body` says, then merges them into each binary's table with an
    incremental read."""
    post(base, "/__sim/touch", body)
    read_bench.next_second(base)
    for tag, bin_ in read_bench.BINS:
        cfg = cfgs[tag]
        table = os.path.join(cfg["output"]["path"], "Account")
        before = newest_version(table)
        msgs, fig = read_bench.run_one(bin_, f"{label} [{tag}]", cfg,
                                       catalog([("Account", FIELDS7)], "incremental"), base, tmp)
        read_bench.RESULTS.setdefault((read_bench.SCALE, label, tag), []).append(fig)
        size, added, removed = log_actions(table, before)
        print(f"{'':<44} table {size / 1e6:7.1f} MB, rewritten (removed) {removed / 1e6:7.2f} MB "
              f"({removed / size * 100:5.1f}%), written {added / 1e6:7.2f} MB")


def account_fields(bin_, cfg, tmp):
    """Every field `sfetl discover` lists for Account."""
    path = os.path.join(tmp, "discover.json")
    json.dump(cfg, open(path, "w"))
    out = subprocess.run([bin_, "discover", "--config", path], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        m = json.loads(line) if line.startswith("{") else {}
        for s in m.get("catalog", {}).get("streams", []):
            if s["name"] == "Account":
                return list(s["json_schema"]["properties"])
    raise SystemExit("discover listed no Account stream")


def history_refreshes(cfg, base, tmp, touch, add_field):
    """A full refresh into an empty history, `touch` spread changes, and a second full refresh
    into the history that now holds a version of every row; each binary keeps its own tables.
    With `add_field`, the first refresh reads every field but Name, the second Name too: every
    row's current version changes."""
    every = account_fields(read_bench.BINS[0][1], cfg, tmp) if add_field else []
    for name, fields in (("7 fields", FIELDS7), ("all fields", every)):
        cfgs = {tag: dict(cfg, output={"format": "delta", "path": os.path.join(tmp, "hist-" + tag),
                                       "history": True})
                for tag, _ in read_bench.BINS}
        for step in ("first", "second"):
            if step == "second" and touch:
                post(base, "/__sim/touch", {"object": "Account", "count": touch})
            label = f"Account {name} -> delta history, {step} full refresh"
            read = [f for f in fields if f != "Name"] if add_field and step == "first" else fields
            for tag, b in read_bench.BINS:
                path = cfgs[tag]["output"]["path"]
                if step == "first":
                    shutil.rmtree(path, ignore_errors=True)
                history = os.path.join(path, "Account_history")
                before = newest_version(history) if step == "second" else -1
                msgs, fig = read_bench.run_one(b, f"{label} [{tag}]", cfgs[tag],
                                               catalog([("Account", read)]), base, tmp)
                read_bench.RESULTS.setdefault((read_bench.SCALE, label, tag), []).append(fig)
                size, added, removed = log_actions(history, before)
                print(f"{'':<44} history {size / 1e6:7.1f} MB before, removed {removed / 1e6:7.2f} MB, "
                      f"written {added / 1e6:7.2f} MB")


def newest_ids(bin_, export, n):
    out = subprocess.run([bin_, "query", "--path", export, "--format", "csv",
                          f'SELECT "Id" FROM "Account" ORDER BY "Id" DESC LIMIT {n}'],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    return out[1:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=1_000_000)
    ap.add_argument("--bin")
    ap.add_argument("--baseline-bin", help="an older sfetl binary run beside the new one, with a table of its own")
    ap.add_argument("--runs", type=int, default=1, help="repeat the whole sequence this many times")
    ap.add_argument("--history", action="store_true",
                    help="full refreshes into a table with history: an empty one, then one holding versions")
    ap.add_argument("--touch", type=int, default=1000,
                    help="with --history, the Accounts changed before the second full refresh (0: none)")
    ap.add_argument("--add-field", action="store_true",
                    help="with --history, the first full refresh reads Account without Name, the second with it")
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bin_ = a.bin
    if not bin_:
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
        subprocess.run(["cargo", "build", "--release", "--bin", "sfetl"], cwd=root, check=True)
        bin_ = os.path.join(target, "release", "sfetl")
    read_bench.ONLY = None
    read_bench.BINS = [("new", bin_)] + ([("old", a.baseline_bin)] if a.baseline_bin else [])
    read_bench.SCALE = a.scale
    t0 = time.time()
    sim = subprocess.Popen([bin_, "simulate", "--scale", str(a.scale), "--seed", "1"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    creds = json.loads(sim.stdout.readline())
    base = creds["base_url"]
    read_bench.SIM_PID = sim.pid
    print(f"simulator at --scale {a.scale} ready in {time.time() - t0:.1f} s")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = {"client_id": creds["client_id"], "client_secret": creds["client_secret"],
                   "refresh_token": creds["refresh_token"], "login_url": creds["login_url"],
                   "start_date": "2000-01-01", "stream_slice_step": "P3650D", "cursor_lag": "PT0S"}
            pq = dict(cfg, output={"format": "parquet", "path": os.path.join(tmp, "parquet")})
            # A table per binary, so each merges the same changes into a table it wrote.
            dl = {tag: dict(cfg, output={"format": "delta", "path": os.path.join(tmp, "delta-" + tag)})
                  for tag, _ in read_bench.BINS}
            for _ in range(a.runs):
                if a.history:
                    history_refreshes(cfg, base, tmp, a.touch, a.add_field)
                    continue
                run(bin_, "Account 7 fields -> parquet", pq, catalog([("Account", FIELDS7)]), base, tmp)
                for tag, b in read_bench.BINS:
                    shutil.rmtree(dl[tag]["output"]["path"], ignore_errors=True)
                    msgs, fig = read_bench.run_one(b, f"Account 7 fields -> delta [{tag}]", dl[tag],
                                                   catalog([("Account", FIELDS7)]), base, tmp)
                    read_bench.RESULTS.setdefault((a.scale, "Account 7 fields -> delta", tag), []).append(fig)
                incremental("delta MERGE of 1,000 spread changes", dl, base, tmp,
                            {"object": "Account", "count": 1000})
                ids = newest_ids(bin_, dl["new"]["output"]["path"], 1000)
                incremental("delta MERGE of 1,000 newest rows changed", dl, base, tmp,
                            {"object": "Account", "ids": ids})
            read_bench.summary()
    finally:
        sim.terminate()
        sim.wait()


if __name__ == "__main__":
    main()
