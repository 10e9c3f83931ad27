#!/usr/bin/env python3
"""Writes link/hot-text.txt: the functions a read executes, for the linker to place together.

Why: a process's code is resident only where it ran, but the kernel maps the 64 KB around each
page fault in a file-backed text segment ("fault-around"). sfetl's text segment is over 100 MB
(DataFusion, deltalake), and the 3 MB of functions a read runs are spread through it, so a
RECORD read held 20 MB of code resident: more than a third of its peak RSS. lld's
`--symbol-ordering-file` (build.rs passes this file to release links) places the listed
functions first and together, and the read's code then takes about as much memory as its size.

How: runs the reads users run (RECORDs and Parquet, all fields and 7, full refresh and
incremental, Delta) under valgrind's callgrind against `sfetl simulate`, takes every function
callgrind saw execute that the binary defines, and writes their mangled names in the order of
first use: the RECORD reads' functions first, then those Parquet adds, then Delta's (a RECORD
read then touches the fewest pages), each group in the order of their addresses in that binary
(so neighbours stay neighbours). Symbol names are stable across
builds of the same Cargo.lock and toolchain, except the `.llvm.<hash>` suffixes LLVM gives
functions it makes visible across a crate's codegen units, which change with that crate's code.
sfetl's own crate is built as one codegen unit in release (Cargo.toml) so that it has none: a
change to sfetl's code renames nothing the list holds (with 16 units, one changed Parquet
function renamed 1,269 of 13,022 names, and a change to the describe calls once took a RECORD
read from 22 to 28 MB peak RSS). Functions added or changed since the list was made are placed
by the linker as before (slower to fault in, never wrong), so regenerate the list after changes
to the read path and after a toolchain or dependency update (those rename dependencies'
functions); `benches/read_bench.py` prints how many of the list's names its binary lacks:

    cargo build --release && python3 scripts/hot_text.py --bin $CARGO_TARGET_DIR/release/sfetl

Needs valgrind and nm (binutils). Takes a few minutes; not run in CI.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The benchmark's fields and catalogs: the reads laid out are the reads measured.
sys.path.insert(0, os.path.join(ROOT, "benches"))
from read_bench import FIELDS7, catalog  # noqa: E402


def defined_functions(binary):
    """Mangled name -> address of every function the binary defines."""
    out = subprocess.run(["nm", "--defined-only", binary], check=True, capture_output=True, text=True).stdout
    funcs = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            funcs.setdefault(parts[2], int(parts[0], 16))
    return funcs


def executed(callgrind_out):
    """Names of the functions a callgrind profile saw run (recursion suffixes `'N` removed)."""
    names = set()
    with open(callgrind_out, errors="replace") as f:
        for line in f:
            if line.startswith(("fn=", "cfn=")):
                name = line.split("=", 1)[1].strip()
                names.add(name.split("'", 1)[0])
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="release build of sfetl")
    ap.add_argument("--scale", type=int, default=20000, help="simulator scale (rows of Account)")
    ap.add_argument("--out", default=os.path.join(ROOT, "link", "hot-text.txt"))
    a = ap.parse_args()
    funcs = defined_functions(a.bin)
    sim = subprocess.Popen([a.bin, "simulate", "--scale", str(a.scale), "--seed", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # Functions in the order of the run that first executed them.
    tiers = []
    try:
        creds = json.loads(sim.stdout.readline())
        with tempfile.TemporaryDirectory() as tmp:
            base = {"client_id": creds["client_id"], "client_secret": creds["client_secret"],
                    "refresh_token": creds["refresh_token"], "login_url": creds["login_url"],
                    "start_date": "2000-01-01", "stream_slice_step": "P3650D", "cursor_lag": "PT0S"}
            outputs = {
                "records": {},
                "parquet": {"output": {"format": "parquet", "path": os.path.join(tmp, "pq")}},
                "delta": {"output": {"format": "delta", "path": os.path.join(tmp, "delta")}},
            }
            runs = [(out, fields, mode) for out in ("records", "parquet") for fields in ([], FIELDS7)
                    for mode in ("full_refresh", "incremental")]
            runs.append(("delta", FIELDS7, "incremental"))
            for i, (out, fields, mode) in enumerate(runs):
                cfg = os.path.join(tmp, "config.json")
                cat = os.path.join(tmp, "catalog.json")
                json.dump({**base, **outputs[out]}, open(cfg, "w"))
                json.dump(catalog([("Account", fields)], mode), open(cat, "w"))
                profile = os.path.join(tmp, f"callgrind.{i}")
                cmd = ["valgrind", "--tool=callgrind", "--demangle=no", "--compress-strings=no",
                       f"--callgrind-out-file={profile}", a.bin, "read", "--config", cfg, "--catalog", cat]
                r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                if r.returncode != 0:
                    sys.exit(f"{out} {mode} read failed under valgrind:\n{r.stderr[-2000:]}")
                got = executed(profile) & funcs.keys()
                print(f"{out:8} {len(fields) or 'all':>3} fields {mode:12}: {len(got)} functions", flush=True)
                tiers.append(got)
    finally:
        sim.terminate()
        sim.wait()
    ordered, placed = [], set()
    for got in tiers:
        ordered += sorted(got - placed, key=lambda n: funcs[n])
        placed |= got
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.writelines(n + "\n" for n in ordered)
    print(f"{len(ordered)} functions written to {a.out}")


if __name__ == "__main__":
    main()
