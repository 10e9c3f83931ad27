"""sfetl's protocol output read by Airbyte's own protocol models and a JSON Schema validator.

These are the third-party checks of issue 2: the SPEC message must be accepted by the Airbyte
protocol models, its connectionSpecification must be a valid draft-07 JSON Schema, and that
schema must accept a config written for Airbyte's Salesforce source.
"""

import json
import os
import pathlib
import subprocess

import jsonschema
from airbyte_protocol.models import AirbyteMessage, Type, Status

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ["SFETL_BIN"]
SECRETS = ["EXAMPLE-CLIENT-SECRET-9c1e", "5Aep861EXAMPLE-REFRESH-TOKEN-f00d"]


def run(*args):
    return subprocess.run([BIN, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def messages(proc):
    return [AirbyteMessage.model_validate_json(line) for line in proc.stdout.splitlines()]


def test_spec_is_one_valid_airbyte_message_with_a_valid_schema():
    proc = run("spec")
    assert proc.returncode == 0
    msgs = messages(proc)
    assert len(msgs) == 1
    assert msgs[0].type == Type.SPEC
    schema = msgs[0].spec.connectionSpecification
    jsonschema.Draft7Validator.check_schema(schema)
    airbyte_config = json.loads((ROOT / "fixtures/configs/airbyte_style.json").read_text())
    jsonschema.Draft7Validator(schema).validate(airbyte_config)


def test_schema_rejects_the_bad_config_fields():
    schema = messages(run("spec"))[0].spec.connectionSpecification
    bad = json.loads((ROOT / "fixtures/configs/bad_config.json").read_text())
    errors = sorted(
        ".".join(map(str, e.absolute_path)) or e.message
        for e in jsonschema.Draft7Validator(schema).iter_errors(bad)
    )
    assert errors == ["'client_id' is a required property", "start_date", "stream_slice_step"]


def test_check_failure_is_a_valid_connection_status():
    proc = run("check", "--config", "fixtures/configs/bad_config.json")
    assert proc.returncode == 0
    msgs = messages(proc)
    assert len(msgs) == 1
    assert msgs[0].type == Type.CONNECTION_STATUS
    assert msgs[0].connectionStatus.status == Status.FAILED
    for field in ("client_id", "start_date", "stream_slice_step"):
        assert field in msgs[0].connectionStatus.message
    for s in SECRETS:
        assert s not in proc.stdout and s not in proc.stderr


def test_read_config_error_is_a_valid_trace():
    proc = run("read", "--config", "fixtures/configs/bad_config.json", "--catalog", "fixtures/catalogs/account.json")
    assert proc.returncode != 0
    msgs = messages(proc)
    assert len(msgs) == 1
    assert msgs[0].type == Type.TRACE
    assert msgs[0].trace.error.failure_type.value == "config_error"
    for s in SECRETS:
        assert s not in proc.stdout and s not in proc.stderr
