"""Airflow DAG: a Salesforce export fanned out over workers with sfetl's slices.

`sfetl plan` cuts the read into independent slices (one JSON line each: stream, cursor window,
estimated rows, API, a stable slice id); dynamic task mapping (`expand`) makes one `read_slice`
task per line, each running `sfetl read --slice` on whatever worker Airflow picks, up to
`max_active_tis_per_dagrun` at once. Every slice commits on its own into the Parquet export
(`output.path` of the config, e.g. s3://...): a retried or re-run slice that already committed
does nothing, so `sfetl query` (and any Parquet reader) sees each row once whatever order the
slices finish in. When every slice succeeded, `save_state` keeps the cursor the next run's plan
starts from.

Needs Airflow 2.4+ (TaskFlow dynamic task mapping), the sfetl binary on the workers, and the
config, catalog and state paths below on storage every worker sees.
"""

import json
import os
import subprocess
import tempfile

import pendulum
from airflow.decorators import dag, task

SFETL = os.environ.get("SFETL_BIN", "sfetl")
CONFIG = "/opt/sfetl/config.json"  # output.format "parquet", output.path s3://bucket/salesforce
CATALOG = "/opt/sfetl/catalog.json"  # incremental streams, e.g. Account, Contact, Opportunity
STATE = "/opt/sfetl/state.json"  # written by save_state; absent before the first run


@dag(
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["salesforce", "sfetl"],
)
def sfetl_slices():
    @task
    def plan() -> list[str]:
        args = [SFETL, "plan", "--config", CONFIG, "--catalog", CATALOG]
        if os.path.exists(STATE):
            args += ["--state", STATE]
        out = subprocess.run(args, check=True, capture_output=True, text=True)
        return out.stdout.splitlines()

    @task(max_active_tis_per_dagrun=8, retries=3)
    def read_slice(line: str) -> list[dict]:
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            f.write(line)
            f.flush()
            out = subprocess.run(
                [SFETL, "read", "--config", CONFIG, "--catalog", CATALOG, "--slice", f.name],
                check=True,
                capture_output=True,
                text=True,
            )
        messages = [json.loads(m) for m in out.stdout.splitlines()]
        return [m["state"] for m in messages if m.get("type") == "STATE"]

    @task
    def save_state(states: list[list[dict]]) -> None:
        # Runs only when every slice succeeded: each stream is then covered up to the end of
        # its last slice. (sfetl also accepts the slices' STATEs as they are, in any order, and
        # merges them: `--state` with the list below works too.)
        cursors: dict[str, dict] = {}
        for state in (s for per_slice in states for s in per_slice):
            stream = state["stream"]["stream_descriptor"]["name"]
            blob = state["stream"]["stream_state"]
            for piece in blob.get("slices", []):
                best = cursors.setdefault(stream, {"cursor_field": blob["cursor_field"]})
                best["cursor"] = max(best.get("cursor", piece["end"]), piece["end"])
        previous = json.load(open(STATE)) if os.path.exists(STATE) else []
        kept = [s for s in previous if s["stream"]["stream_descriptor"]["name"] not in cursors]
        new = [
            {"type": "STREAM", "stream": {"stream_descriptor": {"name": name}, "stream_state": c}}
            for name, c in cursors.items()
        ]
        tmp = STATE + ".tmp"
        with open(tmp, "w") as f:
            json.dump(kept + new, f)
        os.replace(tmp, STATE)

    save_state(read_slice.expand(line=plan()))


sfetl_slices()
