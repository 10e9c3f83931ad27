"""A Delta history kept by full refreshes, read by delta-rs's Python bindings (`deltalake`), on
local disk and on S3 (SeaweedFS). Its own module, so its own simulator: the Contacts it changes
would fall inside the cursor lag of test_delta's slice plans."""

import collections
import datetime

import pytest
from deltalake import DeltaTable

from conftest import catalog, run, sim_config, write_json
from test_delta import post, storage
from test_read_outputs import rest_rows, seaweed  # noqa: F401 (fixtures)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_history_rewritten_by_a_full_refresh_reads_back_in_delta_rs(sim, seaweed, tmp_path, where):  # noqa: F811
    """A second full refresh with `history: true` that adds a field (every version corrected),
    moves 3 Contacts and loses 2 rewrites the history's files in one commit; delta-rs reads the
    history back as the org stands."""
    port, _fs = seaweed
    path, opts, py_storage = storage(where, port, tmp_path, "history")
    extra = {"start_date": "2000-01-01", "cursor_lag": "PT0S", "stream_slice_step": "P3650D",
             "output": {"format": "delta", "path": path, "storage_options": opts, "history": True}}
    cfg = write_json(tmp_path / "c.json", sim_config(sim, **extra))

    def refresh(fields, name):
        cat = write_json(tmp_path / f"{name}.json", catalog("Contact", fields))
        proc = run("read", "--config", cfg, "--catalog", cat)
        assert proc.returncode == 0, proc.stderr.decode()

    # IsDeleted selected: a Contact in the recycle bin (queryAll reads it) is a deletion.
    refresh(["Id", "LastName", "IsDeleted", "SystemModstamp"], "narrow")
    touched = post(sim, "/__sim/touch", {"object": "Contact", "count": 3})["ids"]
    deleted = post(sim, "/__sim/delete", {"object": "Contact", "count": 2})["ids"]
    refresh(["Id", "LastName", "IsDeleted", "Email", "SystemModstamp"], "wide")
    dt = DeltaTable(f"{path}/Contact_history", storage_options=py_storage)
    assert dt.history(1)[0]["operation"] == "MERGE"
    rows = dt.to_pyarrow_table().to_pylist()
    live = {r["Id"]: r for r in rest_rows(sim, "SELECT Id, Email, IsDeleted FROM Contact") if not r["IsDeleted"]}
    current = {r["Id"]: r for r in rows if r["_sfetl_is_current"]}
    assert sorted(current) == sorted(live)
    # A blank Email is null in the org's REST answer and in the history alike.
    assert {i: r["Email"] for i, r in current.items()} == {i: r["Email"] for i, r in live.items()}
    versions = collections.Counter(r["Id"] for r in rows)
    moved = [i for i in touched if i in live]  # a touched Contact may be one deleted after
    assert moved and {i: versions[i] for i in moved} == {i: 2 for i in moved}
    assert sum(versions[i] for i in live) == len(live) + len(moved)
    end = datetime.datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=datetime.timezone.utc)
    for i in deleted:
        [gone] = [r for r in rows if r["Id"] == i]
        assert not gone["_sfetl_is_current"] and gone["_sfetl_valid_to"] < end, gone
