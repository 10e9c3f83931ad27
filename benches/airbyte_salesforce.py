#!/usr/bin/env python3
"""Runs Airbyte's own Salesforce source (PyPI `airbyte-source-salesforce`) against `sfetl
simulate`, for benches/read_bench.py's `--airbyte-python`.

    <venv>/bin/python benches/airbyte_salesforce.py LOGIN_URL spec|check|discover|read ...

Why a wrapper: the source logs in at https://login.salesforce.com (or test.) with no setting to
change it, and the simulator's token endpoint is LOGIN_URL (`http://127.0.0.1:<port>`). Requests
to those two hosts are sent to LOGIN_URL instead; nothing else of the source is changed (the
token response's `instance_url` then points it at the simulator for every other call).
"""

import sys

from source_salesforce import api
from source_salesforce.run import run

LOGIN_HOSTS = ("https://login.salesforce.com", "https://test.salesforce.com")


def main():
    login_url = sys.argv.pop(1).rstrip("/")
    make_request = api.Salesforce._make_request

    def to_simulator(self, method, url, *args, **kwargs):
        if url.startswith(LOGIN_HOSTS):
            url = login_url + url.split(".salesforce.com", 1)[1]
        return make_request(self, method, url, *args, **kwargs)

    api.Salesforce._make_request = to_simulator
    run()


if __name__ == "__main__":
    main()
