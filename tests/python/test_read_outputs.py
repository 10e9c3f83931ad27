"""sfetl's read output consumed by third-party readers: pyarrow (Arrow IPC, Parquet, S3 through
SeaweedFS) and DuckDB, asserting exact counts, column types and values."""

import decimal
import json
import os
import tempfile

import duckdb
import pyarrow as pa
import pyarrow.fs
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest

from conftest import catalog, run, sim_config, write_json
from s3server import free_port, start_seaweed, stop_seaweed  # noqa: F401 (free_port: test_delta)

FIELDS = ["Id", "Name", "IsDeleted", "AnnualRevenue", "NumberOfEmployees", "CreatedDate", "SystemModstamp", "BillingAddress"]


def rest_rows(creds, soql):
    """The org's rows by an independent path: the simulator's REST API with a fresh token."""
    import urllib.parse
    import urllib.request

    form = urllib.parse.urlencode(
        {"grant_type": "refresh_token", "client_id": creds["client_id"], "client_secret": creds["client_secret"], "refresh_token": creds["refresh_token"]}
    ).encode()
    tok = json.load(urllib.request.urlopen(creds["login_url"] + "/services/oauth2/token", form))
    url = tok["instance_url"] + "/services/data/v62.0/queryAll?q=" + urllib.parse.quote(soql)
    rows = []
    while url:
        req = urllib.request.Request(url, headers={"Authorization": "Bearer " + tok["access_token"]})
        page = json.load(urllib.request.urlopen(req))
        rows += page["records"]
        url = None if page["done"] else tok["instance_url"] + page["nextRecordsUrl"]
    return rows


def test_arrow_ipc_stream_reads_in_pyarrow(sim, tmp_path):
    cfg = write_json(tmp_path / "c.json", sim_config(sim))
    cat = write_json(tmp_path / "cat.json", catalog("Account", FIELDS))
    proc = run("read", "--config", cfg, "--catalog", cat, "--arrow-ipc")
    assert proc.returncode == 0, proc.stderr.decode()
    table = pa.ipc.open_stream(proc.stdout).read_all()
    assert table.num_rows == 500
    schema = table.schema
    assert schema.field("Id").type == pa.string()
    assert schema.field("NumberOfEmployees").type == pa.int32()
    assert schema.field("SystemModstamp").type == pa.timestamp("us", tz="UTC")
    assert pa.types.is_decimal(schema.field("AnnualRevenue").type)
    assert pa.types.is_struct(schema.field("BillingAddress").type)
    # protocol messages moved to stderr
    states = [json.loads(l) for l in proc.stderr.decode().splitlines() if l.startswith("{") and '"STATE"' in l]
    assert states and states[-1]["state"]["sourceStats"]["recordCount"] == 500.0


def test_parquet_types_and_values_in_duckdb_and_pyarrow(sim, tmp_path):
    export = tmp_path / "export"
    cfg = write_json(tmp_path / "c.json", sim_config(sim, output={"format": "parquet", "path": str(export)}))
    cat = write_json(tmp_path / "cat.json", catalog("Account", FIELDS))
    proc = run("read", "--config", cfg, "--catalog", cat)
    assert proc.returncode == 0, proc.stderr.decode()
    files = sorted(str(p) for p in export.glob("Account/*/part-*.parquet"))
    assert files
    table = pq.read_table(files)
    assert table.num_rows == 500
    assert table.schema.field("_sfetl_extracted_at").type == pa.timestamp("us", tz="UTC")

    con = duckdb.connect()
    types = dict(con.execute(f"DESCRIBE SELECT * FROM read_parquet({files!r})").fetchall()[i][:2] for i in range(len(FIELDS) + 2))
    assert types["NumberOfEmployees"] == "INTEGER"
    assert types["SystemModstamp"] == "TIMESTAMP WITH TIME ZONE"
    assert types["AnnualRevenue"].startswith("DECIMAL(")
    assert types["BillingAddress"].startswith("STRUCT(")
    assert types["IsDeleted"] == "BOOLEAN"
    got = {
        r[0]: (r[1], r[2], r[3])
        for r in con.execute(f"SELECT Id, Name, NumberOfEmployees, BillingAddress.city FROM read_parquet({files!r})").fetchall()
    }
    want = rest_rows(sim, "SELECT Id, Name, NumberOfEmployees, BillingCity FROM Account")
    assert len(got) == len(want) == 500
    for w in want:
        name, employees, city = got[w["Id"]]
        assert name == w["Name"]
        assert employees == w["NumberOfEmployees"]
        assert city == w["BillingCity"]


@pytest.fixture(scope="module")
def sim_5k():
    """A simulator with 5,000 Accounts: enough values per column (1,024 at least) for sfetl to
    judge each column's encoding."""
    import subprocess

    from conftest import BIN

    proc = subprocess.Popen([BIN, "simulate", "--scale", "5000", "--seed", "3"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    yield json.loads(proc.stdout.readline())
    proc.terminate()
    proc.wait(timeout=10)


def test_delta_encoded_parquet_reads_in_duckdb_and_pyarrow_as_plain_does(sim_5k, tmp_path):
    """The default encodings (DELTA_BYTE_ARRAY for Ids in order, DELTA_BINARY_PACKED for
    numbers and timestamps where it stores them as small) read back in DuckDB and pyarrow
    exactly as the same read with `encodings: plain`."""
    cat = write_json(tmp_path / "cat.json", catalog("Account", FIELDS))
    files = {}
    for encodings in ("auto", "plain"):
        export = tmp_path / encodings
        cfg = write_json(tmp_path / f"{encodings}.json", sim_config(sim_5k, output={"format": "parquet", "path": str(export), "encodings": encodings}))
        proc = run("read", "--config", cfg, "--catalog", cat)
        assert proc.returncode == 0, proc.stderr.decode()
        files[encodings] = sorted(str(p) for p in export.glob("Account/*/part-*.parquet"))

    def data_encodings(path):
        meta = pq.ParquetFile(path).metadata
        out = {}
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                col = meta.row_group(g).column(c)
                out.setdefault(col.path_in_schema, set()).update(e for e in col.encodings if e != "RLE")
        return {k: sorted(v) for k, v in out.items()}

    auto = data_encodings(files["auto"][0])
    assert auto["Id"] == ["DELTA_BYTE_ARRAY"]
    assert auto["Name"] == ["PLAIN"]
    assert auto["SystemModstamp"] == ["DELTA_BINARY_PACKED"]
    assert auto["NumberOfEmployees"] == ["DELTA_BINARY_PACKED"]
    plain = data_encodings(files["plain"][0])
    assert not [k for k, v in plain.items() if any(e.startswith("DELTA") for e in v)], plain

    drop = ["_sfetl_extracted_at", "_sfetl_sync_id"]
    tables = {k: pq.read_table(v).drop_columns(drop) for k, v in files.items()}
    assert tables["auto"].num_rows == 5000
    assert tables["auto"].equals(tables["plain"])

    con = duckdb.connect()
    query = "SELECT * EXCLUDE (_sfetl_extracted_at, _sfetl_sync_id) FROM read_parquet({})"
    a, p = query.format(files["auto"]), query.format(files["plain"])
    assert con.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {p})").fetchone() == (0,)
    assert con.execute(f"SELECT count(*) FROM ({p} EXCEPT ALL {a})").fetchone() == (0,)
    assert con.execute(f"SELECT count(*), count(DISTINCT Id), max(SystemModstamp) = (SELECT max(SystemModstamp) FROM ({p})) FROM ({a})").fetchone() == (5000, 5000, True)


@pytest.fixture()
def seaweed(tmp_path):
    proc, port, fs = start_seaweed(tempfile.mkdtemp(dir=tmp_path))
    yield port, fs
    stop_seaweed(proc)


def test_parquet_to_s3_compatible_storage(sim, seaweed, tmp_path):
    port, fs = seaweed
    output = {
        "format": "parquet",
        "path": "s3://exports/salesforce",
        "storage_options": {
            "aws_endpoint": f"http://127.0.0.1:{port}",
            "aws_allow_http": "true",
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
            "aws_region": "us-east-1",
        },
    }
    cfg = write_json(tmp_path / "c.json", sim_config(sim, output=output))
    cat = write_json(tmp_path / "cat.json", catalog("Account", ["Id", "Name", "SystemModstamp"]))
    proc = run("read", "--config", cfg, "--catalog", cat)
    assert proc.returncode == 0, proc.stderr.decode()
    infos = fs.get_file_info(pyarrow.fs.FileSelector("exports/salesforce/Account", recursive=True))
    parts = sorted(i.path for i in infos if i.path.endswith(".parquet"))
    assert len(parts) == 1 and parts[0].endswith("/part-00000.parquet")
    table = pq.read_table(parts, filesystem=fs)
    assert table.num_rows == 500
    assert table.column_names == ["Id", "Name", "SystemModstamp", "_sfetl_deleted_at", "_sfetl_extracted_at", "_sfetl_sync_id"]
    # `sfetl query` over the same export, credentials from the environment.
    env = dict(os.environ, AWS_ENDPOINT=f"http://127.0.0.1:{port}", AWS_ALLOW_HTTP="true",
               AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
    proc = run("query", "--path", "s3://exports/salesforce", "--format", "csv",
               "SELECT count(*) AS n, min(\"Id\") AS first FROM \"Account\"", env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().splitlines() == ["n,first", f"500,{min(table.column('Id').to_pylist())}"]


def test_write_back_from_parquet_on_s3_compatible_storage(sim, seaweed, tmp_path):
    """`sfetl write --input s3://...` reads an analyst's Parquet file from object storage and
    updates the Leads it names; the org's records are read back through REST."""
    port, fs = seaweed
    leads = [r["Id"] for r in rest_rows(sim, "SELECT Id FROM Lead WHERE IsDeleted = false ORDER BY Id LIMIT 3")]
    scores = pa.table({
        "source_object": ["Lead"] * 3,
        "source_id": leads,
        "score": [12.5, 55.25, None],
        "reason": ["from s3", "from s3", None],
    })
    pq.write_table(scores, "exports/scores/scores.parquet", filesystem=fs)
    storage = {
        "aws_endpoint": f"http://127.0.0.1:{port}",
        "aws_allow_http": "true",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "aws_region": "us-east-1",
    }
    writeback = {
        "streams": {"person_scores": {"routes": [
            {"object": "Lead", "when": "source_object = 'Lead'", "operation": "update",
             "fields": {"Id": "source_id", "Score__c": "score", "Score_Reason__c": "reason"}}]}},
        "rejects_path": str(tmp_path / "rejects"),
    }
    cfg = write_json(tmp_path / "c.json", sim_config(
        sim, output={"format": "parquet", "path": "s3://exports/salesforce", "storage_options": storage},
        writeback=writeback))
    proc = run("write", "--config", cfg, "--input", "s3://exports/scores/scores.parquet", "--stream", "person_scores")
    assert proc.returncode == 0, proc.stderr.decode()
    assert "person_scores/routes[0] (update Lead): 3 applied, 0 rejected" in proc.stderr.decode()
    after = {r["Id"]: r for r in rest_rows(sim, "SELECT Id, Score__c, Score_Reason__c FROM Lead WHERE Id IN ('%s')" % "','".join(leads))}
    # A null score clears the field (sent as null through sObject Collections).
    assert [(after[i]["Score__c"], after[i]["Score_Reason__c"]) for i in leads] == [
        (12.5, "from s3"), (55.25, "from s3"), (None, None)]
    assert not (tmp_path / "rejects").exists()
