"""A Dagster job that fans `sfetl plan`'s slices out over worker processes.

`plan` runs `sfetl plan` and yields one dynamic output per slice (Dagster's dynamic mapping, as
Airflow's `expand` in examples/airflow/sfetl_slices_dag.py); `read_slice` runs `sfetl read --slice`
for one of them; `collect` gathers each slice's STATE (and the worker's pid, which the test uses
to see that slices ran in several processes). The multiprocess executor runs each op in its own
process, up to 4 at once. Where sfetl and its files are comes from the environment
(SFETL_BIN, SFETL_CONFIG, SFETL_CATALOG, SFETL_WORKDIR, SFETL_MAX_ROWS), so the job is importable
by the worker processes as it is.
"""

import json
import os
import pathlib
import subprocess

from dagster import DynamicOut, DynamicOutput, job, multiprocess_executor, op


def _sfetl(*args):
    return subprocess.run(
        [os.environ["SFETL_BIN"], *args], capture_output=True, text=True, timeout=600
    )


@op(out=DynamicOut(str))
def plan():
    out = _sfetl(
        "plan",
        "--config", os.environ["SFETL_CONFIG"],
        "--catalog", os.environ["SFETL_CATALOG"],
        "--max-rows-per-slice", os.environ["SFETL_MAX_ROWS"],
    )
    if out.returncode != 0:
        raise RuntimeError(f"sfetl plan failed: {out.stderr}")
    for line in out.stdout.splitlines():
        slice_id = json.loads(line)["slice_id"]
        # Mapping keys allow letters, digits and underscores.
        yield DynamicOutput(line, mapping_key=slice_id.replace("-", "_"))


@op
def read_slice(line: str) -> str:
    slice_id = json.loads(line)["slice_id"]
    path = pathlib.Path(os.environ["SFETL_WORKDIR"]) / f"{slice_id}.json"
    path.write_text(line)
    out = _sfetl(
        "read",
        "--config", os.environ["SFETL_CONFIG"],
        "--catalog", os.environ["SFETL_CATALOG"],
        "--slice", str(path),
    )
    if out.returncode != 0:
        raise RuntimeError(f"sfetl read --slice {slice_id} failed: {out.stderr}")
    states = [json.loads(l)["state"] for l in out.stdout.splitlines() if '"type":"STATE"' in l]
    return json.dumps({"slice_id": slice_id, "pid": os.getpid(), "states": states})


@op
def collect(results: list) -> str:
    return json.dumps([json.loads(r) for r in results])


@job(executor_def=multiprocess_executor.configured({"max_concurrent": 4}))
def sfetl_slices():
    collect(plan().map(read_slice).collect())
