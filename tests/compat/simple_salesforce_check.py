#!/usr/bin/env python3
"""Runs the unmodified simple-salesforce client against `sfetl simulate`.

    python3 tests/compat/simple_salesforce_check.py            # builds and starts `sfetl simulate`
    SIM_CMD="sfetl simulate" python3 tests/compat/simple_salesforce_check.py

simple-salesforce always builds `https://` URLs from the instance host. The simulator serves
plain HTTP, so the check hands the client a `requests.Session` (a supported constructor argument)
with a transport adapter that sends the simulator's `https://HOST:PORT` requests over `http://`.
Everything above the socket (URLs, headers, bodies, paging, Bulk 2.0 polling) is the client's own.
Exit status 0 when every check passes.
"""
import csv
import io
import json
import os
import shlex
import subprocess
import sys
import tempfile

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

SCALE = 1000  # 3000 Contacts (+1 created below): query_all needs two pages, Bulk four of 1000.


class PlainHttpForSimulator(HTTPAdapter):
    """Sends https://HOST:PORT/... requests for the simulator's host as http://."""

    def send(self, request, **kwargs):
        request.url = "http://" + request.url[len("https://"):]
        return super().send(request, **kwargs)


def start_simulator():
    cmd = os.environ.get("SIM_CMD")
    if cmd:
        argv = shlex.split(cmd)
    else:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
        subprocess.run(["cargo", "build", "--quiet", "--bin", "sfetl"], check=True, cwd=root)
        argv = [os.path.join(target, "debug", "sfetl"), "simulate"]
    proc = subprocess.Popen(argv + ["--scale", str(SCALE), "--seed", "3"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        sys.exit("simulator did not print its credentials line")
    return proc, json.loads(line)


def access_token(creds, session):
    """A token through the OAuth refresh-token grant on the login host."""
    r = session.post(creds["login_url"] + "/services/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": creds["refresh_token"],
        "client_id": creds["client_id"], "client_secret": creds["client_secret"]})
    r.raise_for_status()
    return r.json()["access_token"]


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + (f": {detail}" if detail and not cond else ""))
    if not cond:
        check.failed += 1


check.failed = 0


def main():
    proc, creds = start_simulator()
    try:
        base = creds["base_url"]
        host = base.split("://", 1)[1]
        session = requests.Session()
        session.mount(f"https://{host}", PlainHttpForSimulator())
        token = access_token(creds, requests.Session())
        sf = Salesforce(instance_url=f"https://{host}", session_id=token, session=session, version="59.0")

        res = sf.query("SELECT Id, Name, BillingCity FROM Account")
        check("query: first page", res["totalSize"] == SCALE and len(res["records"]) == SCALE
              and res["records"][0]["attributes"]["type"] == "Account", res.get("totalSize"))
        res = sf.query_all("SELECT Id, LastName, Account.Name FROM Contact")
        ids = {r["Id"] for r in res["records"]}
        check("query_all over several pages", res["totalSize"] == 3 * SCALE and len(ids) == 3 * SCALE,
              res.get("totalSize"))
        d = sf.Lead.describe()
        names = {f["name"] for f in d["fields"]}
        check("describe", {"Score__c", "Score_Reason__c", "External_Id__c", "Address"} <= names)
        rec = sf.Contact.get(res["records"][0]["Id"])
        check("sobject get", rec["Id"] == res["records"][0]["Id"] and "MailingAddress" in rec)
        created = sf.Contact.create({"LastName": "Compat", "External_Id__c": "COMPAT-0"})
        check("sobject create", created["success"] is True and created["id"].startswith("003"), created)
        status = sf.Contact.update(created["id"], {"Score__c": 42.5})
        check("sobject update", status == 204, status)
        try:
            sf.query("SELECT Id FROM Account GROUP BY Name")
            check("malformed query raises", False)
        except SalesforceMalformedRequest as e:
            check("malformed query raises", e.content[0]["errorCode"] == "MALFORMED_QUERY", e.content)

        pages = list(sf.bulk2.Contact.query("SELECT Id, LastName, Description FROM Contact", max_records=1000, wait=0.1))
        rows = [r for page in pages for r in csv.DictReader(io.StringIO(page))]
        check("bulk2 query (paged by locator)", len(pages) == 4 and len(rows) == 3 * SCALE + 1,
              f"{len(pages)} pages, {len(rows)} rows")
        with tempfile.TemporaryDirectory() as tmp:
            results = sf.bulk2.Contact.download("SELECT Id, Email FROM Contact", path=tmp, max_records=5000, wait=0.1)
            check("bulk2 download", sum(r["number_of_records"] for r in results) == 3 * SCALE + 1, results)
        records = [{"External_Id__c": f"COMPAT-{i}", "LastName": f"Bulk {i}", "Score__c": str(i % 100)}
                   for i in range(1, 301)]
        records.append({"External_Id__c": "COMPAT-BAD", "LastName": "x", "Score__c": "not a number"})
        out = sf.bulk2.Contact.upsert(records=records, external_id_field="External_Id__c", wait=0.1)
        check("bulk2 upsert", out[0]["numberRecordsProcessed"] == 301 and out[0]["numberRecordsFailed"] == 1, out)
        with tempfile.TemporaryDirectory() as tmp:
            job_id = out[0]["job_id"]
            sf.bulk2.Contact.get_failed_records(job_id, file=os.path.join(tmp, "failed.csv"))
            failed = open(os.path.join(tmp, "failed.csv")).read()
            check("bulk2 failed results", "INVALID_TYPE_ON_FIELD_IN_RECORD" in failed, failed[:200])
        res = sf.query("SELECT Id, Score__c FROM Contact WHERE External_Id__c = 'COMPAT-7'")
        check("upserted row visible", res["totalSize"] == 1 and res["records"][0]["Score__c"] == 7, res)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print("simple-salesforce compatibility:", "FAILED" if check.failed else "all checks passed")
    sys.exit(1 if check.failed else 0)


if __name__ == "__main__":
    main()
