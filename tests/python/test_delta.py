"""Delta Lake output read by delta-rs's Python bindings (`deltalake`) and pyarrow, on local disk
and on S3 (SeaweedFS): after a full refresh, 37 touched and 5 deleted Accounts and an
incremental read that resumes from the table's own state, the table equals the org row for row
and value for value (the org read through REST), and each commit carries the stream's STATE."""

import datetime
import decimal
import json
import os

import pytest
from deltalake import DeltaTable

from conftest import catalog, run, sim_config, write_json
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
            # Bulk CSV cannot tell an empty string from null.
            "Name": r["Name"] or None,
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


@pytest.mark.parametrize("where", ["local", "s3"])
def test_delta_table_equals_the_org_after_changes(sim, seaweed, tmp_path, where):  # noqa: F811
    port, _fs = seaweed
    if where == "local":
        path, storage, py_storage = str(tmp_path / "export"), {}, None
    else:
        path = "s3://exports/delta"
        storage = {"aws_endpoint": f"http://127.0.0.1:{port}", "aws_allow_http": "true", "aws_access_key_id": "test",
                   "aws_secret_access_key": "test", "aws_region": "us-east-1"}
        py_storage = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "test",
                      "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}
    extra = {"start_date": "2000-01-01", "cursor_lag": "PT0S", "stream_slice_step": "P3650D",
             "output": {"format": "delta", "path": path, "storage_options": storage}}
    cfg = write_json(tmp_path / "c.json", sim_config(sim, **extra))
    read(tmp_path, cfg, "full_refresh", "full")
    dt = DeltaTable(f"{path}/Account", storage_options=py_storage)
    _, rows = table_accounts(dt)
    assert normalized(rows) == normalized(org_accounts(sim))

    touched = post(sim, "/__sim/touch", {"object": "Account", "count": 37})["ids"]
    deleted = post(sim, "/__sim/delete", {"object": "Account", "count": 5})["ids"]
    assert len(touched) == 37 and len(deleted) == 5
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
