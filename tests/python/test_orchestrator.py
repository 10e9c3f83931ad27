"""A real orchestrator (Dagster, from PyPI) runs `sfetl plan`'s slices as parallel worker
processes against the simulator; the Parquet export then holds every Id exactly once, and the
slices' STATEs passed back to `sfetl plan` resume after the last slice."""

import json
import os
import sys
from datetime import datetime, timedelta

import pyarrow.dataset as ds
from dagster import DagsterInstance, execute_job, reconstructable

from conftest import BIN, catalog, run, sim_config, write_json

sys.path.insert(0, os.path.dirname(__file__))
from orchestration.dagster_slices import sfetl_slices  # noqa: E402


def test_dagster_maps_slices_over_worker_processes_and_every_id_arrives_once(sim, tmp_path, monkeypatch):
    export = tmp_path / "export"
    config = write_json(
        tmp_path / "config.json",
        sim_config(sim, output={"format": "parquet", "path": str(export)}),
    )
    cat = write_json(
        tmp_path / "catalog.json",
        catalog("Contact", ["Id", "LastName", "SystemModstamp"], mode="incremental"),
    )
    work = tmp_path / "work"
    work.mkdir()
    for k, v in {
        "SFETL_BIN": BIN,
        "SFETL_CONFIG": config,
        "SFETL_CATALOG": cat,
        "SFETL_WORKDIR": str(work),
        "SFETL_MAX_ROWS": "400",
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster" / "dagster.yaml").write_text("")
    with DagsterInstance.get() as instance:
        with execute_job(reconstructable(sfetl_slices), instance=instance) as result:
            assert result.success
            slices = json.loads(result.output_for_node("collect"))
    assert len(slices) >= 4, slices
    assert len({s["pid"] for s in slices}) > 1, "slices ran in several worker processes"
    assert all(len(s["states"]) == 1 for s in slices)

    ids = ds.dataset(str(export / "Contact"), format="parquet").to_table(columns=["Id"])
    ids = ids.column("Id").to_pylist()
    org = json.loads(run("query", "--path", str(export), "--format", "json",
                         "SELECT count(*) AS n FROM Contact").stdout.splitlines()[0])
    assert len(ids) == 1500 and len(set(ids)) == 1500, "every Contact exactly once"
    assert org["n"] == 1500

    # The slices' STATEs, in any order, make the next plan start after the last slice.
    states = [st for s in reversed(slices) for st in s["states"]]
    state = write_json(tmp_path / "state.json", states)
    out = run("plan", "--config", config, "--catalog", cat, "--state", state)
    assert out.returncode == 0, out.stderr
    nxt = [json.loads(line) for line in out.stdout.decode().splitlines()]
    planned = [json.loads(p.read_text()) for p in work.glob("*.json")]
    last_upper = max(datetime.fromisoformat(s["upper"]) for s in planned)
    resumed = datetime.fromisoformat(nxt[0]["lower"])
    assert last_upper - resumed == timedelta(minutes=10), "the lookback before the last slice's end"
