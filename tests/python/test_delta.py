"""Delta Lake output read by delta-rs's Python bindings (`deltalake`) and pyarrow, on local disk
and on S3 (SeaweedFS): after a full refresh, 37 touched and 5 deleted Accounts and an
incremental read that resumes from the table's own state, the table equals the org row for row
and value for value (the org read through REST), and each commit carries the stream's STATE;
`sfetl plan`'s 8 slices run as 8 concurrent processes into one table give every Id exactly
once, also after a worker is killed with SIGKILL at seeded points and its slice run again."""

import datetime
import decimal
import json
import os
import signal
import subprocess

import pytest
from deltalake import DeltaTable

from conftest import BIN, catalog, run, sim_config, write_json
from test_read_outputs import free_port, rest_rows, seaweed  # noqa: F401 (fixtures)

FIELDS = ["Id", "Name", "IsDeleted", "AnnualRevenue", "NumberOfEmployees", "CreatedDate", "SystemModstamp"]


def post(creds, path, body):
    import urllib.request

    req = urllib.request.Request(creds["base_url"] + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))


def sf_time(text):
    """A Salesforce datetime (`2024-01-15T10:00:00.000+0000`) as an aware datetime."""
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def org_accounts(creds):
    rows = rest_rows(creds, "SELECT Id, Name, IsDeleted, AnnualRevenue, NumberOfEmployees, CreatedDate, SystemModstamp FROM Account")
    out = {}
    for r in rows:
        if r["IsDeleted"]:
            continue
        out[r["Id"]] = {
            "Name": r["Name"],
            "IsDeleted": False,
            "AnnualRevenue": None if r["AnnualRevenue"] is None else decimal.Decimal(str(r["AnnualRevenue"])),
            "NumberOfEmployees": r["NumberOfEmployees"],
            "CreatedDate": sf_time(r["CreatedDate"]),
            "SystemModstamp": sf_time(r["SystemModstamp"]),
        }
    return out


def table_accounts(dt):
    table = dt.to_pyarrow_table()
    out = {}
    for r in table.to_pylist():
        rev = r["AnnualRevenue"]
        out[r["Id"]] = {
            "Name": r["Name"],
            "IsDeleted": r["IsDeleted"],
            "AnnualRevenue": None if rev is None else decimal.Decimal(rev).normalize(),
            "NumberOfEmployees": r["NumberOfEmployees"],
            "CreatedDate": r["CreatedDate"],
            "SystemModstamp": r["SystemModstamp"],
        }
    return table, out


def normalized(rows):
    return {
        k: dict(v, AnnualRevenue=None if v["AnnualRevenue"] is None else v["AnnualRevenue"].normalize())
        for k, v in rows.items()
    }


def read(tmp_path, cfg, mode, name):
    cat = write_json(tmp_path / f"{name}.json", catalog("Account", FIELDS, mode))
    proc = run("read", "--config", cfg, "--catalog", cat)
    assert proc.returncode == 0, proc.stderr.decode()
    return [json.loads(l) for l in proc.stdout.decode().splitlines() if l.startswith("{")]


def storage(where, port, tmp_path, name):
    """(path, sfetl storage_options, deltalake storage_options) of an export on `where`."""
    if where == "local":
        return str(tmp_path / name), {}, None
    return (f"s3://exports/{name}",
            {"aws_endpoint": f"http://127.0.0.1:{port}", "aws_allow_http": "true", "aws_access_key_id": "test",
             "aws_secret_access_key": "test", "aws_region": "us-east-1"},
            {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "test",
             "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"})


@pytest.mark.parametrize("where", ["local", "s3"])
def test_delta_table_equals_the_org_after_changes(sim, seaweed, tmp_path, where):  # noqa: F811
    port, _fs = seaweed
    path, opts, py_storage = storage(where, port, tmp_path, "delta")
    extra = {"start_date": "2000-01-01", "cursor_lag": "PT0S", "stream_slice_step": "P3650D",
             "output": {"format": "delta", "path": path, "storage_options": opts}}
    cfg = write_json(tmp_path / "c.json", sim_config(sim, **extra))
    read(tmp_path, cfg, "full_refresh", "full")
    dt = DeltaTable(f"{path}/Account", storage_options=py_storage)
    _, rows = table_accounts(dt)
    assert normalized(rows) == normalized(org_accounts(sim))

    touched = post(sim, "/__sim/touch", {"object": "Account", "count": 37})["ids"]
    deleted = post(sim, "/__sim/delete", {"object": "Account", "count": 5})["ids"]
    assert len(touched) == 37 and len(deleted) == 5
    # Stamps are whole seconds: the read (cursor_lag 0) sees the changes from the next second on.
    post(sim, "/__sim/next_second", {})
    msgs = read(tmp_path, cfg, "incremental", "inc")
    logs = [m["log"]["message"] for m in msgs if m["type"] == "LOG"]
    assert any("resuming from the STATE committed in its Delta table" in l for l in logs), logs

    dt = DeltaTable(f"{path}/Account", storage_options=py_storage)
    table, rows = table_accounts(dt)
    org = org_accounts(sim)
    assert not set(deleted) & set(rows)
    assert normalized(rows) == normalized(org)
    assert table.num_rows == len(org)
    assert table.column_names[-2:] == ["_sfetl_extracted_at", "_sfetl_sync_id"]
    # The newest commit holds the STATE the read printed last, under the stream's txn app id.
    last = dt.history(1)[0]
    states = [m["state"]["stream"]["stream_state"] for m in msgs if m["type"] == "STATE"]
    assert last["sfetl.app_id"] == "Account"
    assert last["sfetl.state"]["cursor"] == states[-1]["cursor"]
    assert states[-1]["table"] == {"app_id": "Account", "txn": last["sfetl.txn"]}
    # `sfetl query` over the same export (credentials from the environment on S3).
    env = dict(os.environ)
    if py_storage:
        env.update(AWS_ENDPOINT=f"http://127.0.0.1:{port}", AWS_ALLOW_HTTP="true", AWS_ACCESS_KEY_ID="test",
                   AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
    proc = run("query", "--path", path, "--format", "csv", 'SELECT count(*) AS n, min("Id") AS first FROM "Account"', env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().splitlines() == ["n,first", f"{len(org)},{min(org)}"]


CONTACT = ["Id", "LastName", "Email", "SystemModstamp"]


def plan_slices(tmp_path, cfg, cat, rows):
    proc = run("plan", "--config", cfg, "--catalog", cat, "--max-rows-per-slice", str(rows))
    assert proc.returncode == 0, proc.stderr.decode()
    files = []
    for i, line in enumerate(proc.stdout.decode().splitlines()):
        files.append(write_json(tmp_path / f"slice-{i}.json", json.loads(line)))
    return files


def slice_cmd(cfg, cat, f):
    return [BIN, "read", "--config", cfg, "--catalog", cat, "--slice", f]


def contact_ids(sim):
    """The live Contacts (queryAll also answers those in the recycle bin, such as the Contacts
    deleted with the Accounts an earlier test of this module deletes)."""
    return sorted(r["Id"] for r in rest_rows(sim, "SELECT Id, IsDeleted FROM Contact") if not r["IsDeleted"])


@pytest.mark.parametrize("where", ["local", "s3"])
def test_eight_slices_as_eight_concurrent_processes_give_every_id_once(sim, seaweed, tmp_path, where):  # noqa: F811
    port, _fs = seaweed
    path, opts, py_storage = storage(where, port, tmp_path, "slices")
    cfg = write_json(tmp_path / "c.json", sim_config(sim, output={"format": "delta", "path": path, "storage_options": opts}))
    cat = write_json(tmp_path / "cat.json", catalog("Contact", CONTACT, "incremental"))
    # 1,500 Contacts over ten years (less those deleted with the Accounts deleted above),
    # about 200 rows a slice (the simulator's seed fixes where the count query's month
    # boundaries fall): 8 slices.
    files = plan_slices(tmp_path, cfg, cat, 200)
    assert len(files) == 8
    procs = [subprocess.Popen(slice_cmd(cfg, cat, f), stdout=subprocess.PIPE, stderr=subprocess.PIPE) for f in files]
    counts = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
        states = [json.loads(l)["state"] for l in out.decode().splitlines() if '"STATE"' in l]
        counts.append(sum(s["sourceStats"]["recordCount"] for s in states))
    assert sum(counts) == len(contact_ids(sim)), counts
    dt = DeltaTable(f"{path}/Contact", storage_options=py_storage)
    ids = dt.to_pyarrow_table(columns=["Id"]).column("Id").to_pylist()
    assert sorted(ids) == contact_ids(sim)
    # One commit per slice after the table's creation, each under its own slice's txn.
    commits = [h for h in dt.history() if h.get("sfetl.app_id")]
    assert sorted(h["sfetl.app_id"] for h in commits) == sorted("Contact/" + json.load(open(f))["slice_id"] for f in files)


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_a_slice_worker_killed_at_a_seeded_point_then_run_again_gives_every_id_once(sim, tmp_path, seed):
    path = str(tmp_path / "export")
    cfg = write_json(tmp_path / "c.json", sim_config(sim, bulk_max_records=50, output={"format": "delta", "path": path}))
    cat = write_json(tmp_path / "cat.json", catalog("Contact", CONTACT, "incremental"))
    files = plan_slices(tmp_path, cfg, cat, 200)
    victim = files[seed % len(files)]
    # Killed on the seed's message: while its pages are read (after STARTED or the ESTIMATE,
    # nothing committed yet), or once its commit is in the table (after its STATE).
    kinds = ["STARTED", "ESTIMATE", "STATE"]
    at = kinds[seed % 3]
    proc = subprocess.Popen(slice_cmd(cfg, cat, victim), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    killed = False
    for line in proc.stdout:
        m = json.loads(line)
        trace = m.get("trace", {})
        kind = m["type"] if m["type"] == "STATE" else trace.get("estimate") and "ESTIMATE" or \
            trace.get("stream_status", {}).get("status")
        if kind == at:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
    proc.wait()
    # After its STATE the worker may have exited on its own before the signal landed.
    assert killed and proc.returncode in ((-signal.SIGKILL, 0) if at == "STATE" else (-signal.SIGKILL,))
    # Every slice now, the killed one again among them.
    for f in files:
        p = run("read", "--config", cfg, "--catalog", cat, "--slice", f)
        assert p.returncode == 0, p.stderr.decode()
    dt = DeltaTable(f"{path}/Contact")
    ids = dt.to_pyarrow_table(columns=["Id"]).column("Id").to_pylist()
    assert sorted(ids) == contact_ids(sim)
    assert len(ids) == len(set(ids))
