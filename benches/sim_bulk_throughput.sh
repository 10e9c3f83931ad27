#!/usr/bin/env bash
# Measures the simulator's Bulk API 2.0 results throughput (MB/s, one download stream) and its
# peak memory at a given scale (default --scale 1000000, 8.05M rows).
#
#   benches/sim_bulk_throughput.sh [SCALE]
#
# SIM_CMD overrides how the simulator is started (default: the release build of
# `crates/sfetl-sim/examples/simulate.rs`, which runs the same `sfetl_sim::run_cli` as
# `sfetl simulate` and builds without the connector).
# Needs curl and python3. Builds in release mode: run it by hand, not in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${1:-1000000}"
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "${SIM_CMD:-}" ]; then
  cargo build --release -p sfetl-sim --example simulate >&2
  SIM_CMD="$TARGET/release/examples/simulate"
fi
out=$(mktemp); err=$(mktemp)
$SIM_CMD --scale "$SCALE" >"$out" 2>"$err" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$out" "$err"' EXIT
for _ in $(seq 1 1200); do [ -s "$out" ] && break; sleep 0.5; done
[ -s "$out" ] || { echo "simulator did not start" >&2; cat "$err" >&2; exit 1; }
cat "$err" >&2
base=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["base_url"])' "$out")
api="$base/services/data/v62.0"
# An access token from the refresh token the simulator printed (it refuses unknown bearers).
token=$(python3 - "$out" <<'PY'
import json, sys, urllib.parse, urllib.request
c = json.load(open(sys.argv[1]))
body = urllib.parse.urlencode({"grant_type": "refresh_token", "client_id": c["client_id"],
                               "client_secret": c["client_secret"], "refresh_token": c["refresh_token"]}).encode()
print(json.load(urllib.request.urlopen(c["login_url"] + "/services/oauth2/token", body))["access_token"])
PY
)
auth="Authorization: Bearer $token"
soql="SELECT Id, FirstName, LastName, Email, Phone, Title, Description, MailingStreet, MailingCity, MailingPostalCode, MailingCountry, Birthdate, Score__c, Score_Reason__c, External_Id__c, AccountId, OwnerId, CreatedDate, LastModifiedDate, SystemModstamp FROM Contact"
job=$(curl -sf -H "$auth" -H 'Content-Type: application/json' \
  -d "$(python3 -c 'import json,sys; print(json.dumps({"operation":"query","query":sys.argv[1]}))' "$soql")" "$api/jobs/query")
id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$job")
t0=$(date +%s.%N)
for _ in $(seq 1 100); do
  state=$(curl -sf -H "$auth" "$api/jobs/query/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  [ "$state" = JobComplete ] && break
done
t1=$(date +%s.%N)
echo "query job ($soql) completed in $(python3 -c "print(round($t1-$t0,2))") s" >&2
# Every page of the results, following Sforce-Locator (pages end at the automatic chunks' ends,
# so one response never holds a big job's results): bytes on the wire, seconds, MB/s.
report() { # label, maxRecords (or ""), gzip (0/1)
  python3 - "$api/jobs/query/$id/results" "$token" "$@" <<'PY'
import sys, time, urllib.parse, urllib.request
url, token, label, max_records, gzip = sys.argv[1:6]
headers = {"Authorization": "Bearer " + token}
if gzip == "1":
    headers["Accept-Encoding"] = "gzip"
total, pages, locator, t0 = 0, 0, None, time.time()
while True:
    q = {k: v for k, v in (("maxRecords", max_records), ("locator", locator)) if v}
    with urllib.request.urlopen(urllib.request.Request(url + ("?" + urllib.parse.urlencode(q) if q else ""), headers=headers)) as r:
        while chunk := r.read(1 << 20):
            total += len(chunk)
        locator = r.headers.get("Sforce-Locator")
    pages += 1
    if not locator or locator == "null":
        break
s = time.time() - t0
print(f"{label:<22} {total / 1e6:10.1f} MB in {s:6.2f} s = {total / 1e6 / s:8.1f} MB/s ({pages} pages)")
PY
}
report "results (identity)" "" 0
report "results (maxRecords)" 1000000 0
report "results (gzip)" "" 1
rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
echo "peak RSS: $((rss / 1024)) MB at --scale $SCALE"
