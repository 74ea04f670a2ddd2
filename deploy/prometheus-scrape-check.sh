#!/usr/bin/env bash
# A real Prometheus scrapes a running upbit-exporter and evaluates the shipped rules.
#
#   deploy/prometheus-scrape-check.sh HOST:PORT
#
# Starts Prometheus (Debian's package; installed when missing) on a free loopback port with the
# compose stack's prometheus.yml (its target swapped for HOST:PORT, a 1 s interval, and
# deploy/prometheus/rules.yml), then polls its HTTP API until up{job="upbit-exporter"} is 1,
# upbit_connected is readable through PromQL, every dashboard query returns data, and every
# rule is loaded and evaluated healthy. Deadline 60 s. Called by scripts/test.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${1:?usage: deploy/prometheus-scrape-check.sh HOST:PORT}
DEADLINE_SECONDS=60
# shellcheck source=../scripts/tools.sh
. scripts/tools.sh
ensure_apt_tool prometheus
# PyYAML: from the check venv when there, else the system's.
PY=${XDG_CACHE_HOME:-$HOME/.cache}/upbit-exporter/venv/bin/python
[ -x "$PY" ] && "$PY" -c 'import yaml' 2>/dev/null || PY=python3

TMP=$(mktemp -d)
PROM_PID=""
cleanup() {
  if [ -n "$PROM_PID" ] && kill -0 "$PROM_PID" 2>/dev/null; then
    kill "$PROM_PID" 2>/dev/null || true
    wait "$PROM_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cp deploy/prometheus/rules.yml "$TMP/rules.yml"
"$PY" - "$TARGET" "$TMP" <<'EOF'
import sys, yaml
target, tmp = sys.argv[1], sys.argv[2]
cfg = yaml.safe_load(open("deploy/compose/prometheus/prometheus.yml"))
cfg["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s"})
cfg["rule_files"] = [f"{tmp}/rules.yml"]
job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "upbit-exporter")
job["static_configs"] = [{"targets": [target]}]
yaml.safe_dump(cfg, open(f"{tmp}/prometheus.yml", "w"), sort_keys=False)
EOF
promtool check config "$TMP/prometheus.yml" >/dev/null

prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/data" \
  --web.listen-address="127.0.0.1:$PORT" --log.level=warn >"$TMP/prometheus.log" 2>&1 &
PROM_PID=$!
API="http://127.0.0.1:$PORT/api/v1"
echo "prometheus (pid $PROM_PID) on 127.0.0.1:$PORT scraping $TARGET every 1s"

"$PY" - "$API" "$DEADLINE_SECONDS" <<'EOF' || { echo "--- prometheus log" >&2; tail -20 "$TMP/prometheus.log" >&2; exit 1; }
import json, sys, time, urllib.parse, urllib.request
api, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])

def get(path, **params):
    url = f"{api}/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.load(r)
    except Exception:
        return None

def values(expr):
    body = get("query", query=expr)
    if not body or body.get("status") != "success":
        return None
    return [float(s["value"][1]) for s in body["data"]["result"]]

# Every dashboard query must return data from the live service (Grafana's variables filled in:
# all codes, and a rate window of a few 1 s scrapes).
dashboard = json.load(open("deploy/grafana/upbit-exporter.json"))
panel_queries = {
    t["expr"].replace("$__rate_interval", "5s").replace("$code", ".*"): f"panel {p['title']!r} {t['refId']}"
    for p in dashboard["panels"] for t in p["targets"]
}
wanted = {
    'up{job="upbit-exporter"}': lambda v: v == [1.0],
    'upbit_connected{job="upbit-exporter"}': lambda v: v == [1.0],
    'sum(upbit_received_messages_total{job="upbit-exporter"})': lambda v: bool(v) and v[0] > 0,
    'count(upbit_last_message_timestamp_seconds{job="upbit-exporter"} > 0)': lambda v: bool(v) and v[0] > 0,
}
seen, last = {}, ""
while time.monotonic() < deadline:
    for expr, ok in wanted.items():
        if expr not in seen:
            v = values(expr)
            if v is not None and ok(v):
                seen[expr] = v
    for expr in panel_queries:
        if expr not in seen:
            v = values(expr)
            if v:
                seen[expr] = v
    rules = get("rules")
    groups = (rules or {}).get("data", {}).get("groups", [])
    loaded = [r for g in groups for r in g["rules"]]
    healthy = bool(loaded) and all(r.get("health") == "ok" for r in loaded) and all(r.get("lastEvaluation", "").startswith("20") for r in loaded)
    if len(seen) == len(wanted) + len(panel_queries) and healthy:
        for expr in wanted:
            print(f"ok   {expr} = {seen[expr][0]:g}")
        print(f"ok   all {len(panel_queries)} dashboard queries return data")
        print(f"ok   {len(loaded)} rules loaded in {len(groups)} group(s), all evaluated with health ok")
        firing = [r["name"] for r in loaded if r.get("state") == "firing"]
        print(f"     firing now: {', '.join(firing) or 'none'}")
        sys.exit(0)
    missing = [e for e in wanted if e not in seen] + [panel_queries[e] for e in panel_queries if e not in seen]
    last = f"not yet as expected: {missing}; rules loaded {len(loaded)}, healthy {healthy}"
    time.sleep(0.5)
bad = [f"{r['name']}: {r.get('health')} {r.get('lastError', '')}" for g in (groups or []) for r in g["rules"] if r.get("health") != "ok"]
sys.exit(f"FAIL: deadline passed; {last}; unhealthy rules: {bad}")
EOF
echo "--- a real Prometheus scraped $TARGET and evaluated the rules"
