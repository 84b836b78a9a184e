#!/usr/bin/env bash
# Offline checks of the Grafana dashboard and its provisioning files:
#   - dashboards/tools/check_dashboard.py passes on dashboards/pidfd_exporter.json (structure,
#     layout, variables, lint, every expression parsed by promtool);
#   - the checker really catches each kind of defect: a planted defect in a copy must fail it
#     with the expected message;
#   - the provisioning YAML files have the shape Grafana expects.
# Usage: dashboard_check_test.sh <exporter-binary (unused)> <source-dir>
set -uo pipefail
SRC=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/e2e/lib.sh"
PY=$(find_python) || { fail "python3 with PyYAML"; finish; }
command -v promtool >/dev/null || { fail "promtool not installed (Debian package prometheus)"; finish; }
DASH=$SRC/dashboards/pidfd_exporter.json
CHECKER=$SRC/dashboards/tools/check_dashboard.py
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# 1. the shipped dashboard passes every offline check
"$PY" "$CHECKER" "$DASH" > "$TMP/shipped.out" 2>&1
rc=$?
if [ $rc -eq 0 ]; then pass "check_dashboard.py: $(tail -1 "$TMP/shipped.out")"
else fail "check_dashboard.py on the shipped dashboard"; grep -v '^ok' "$TMP/shipped.out" | sed 's/^/     /'; fi

# 2. planted defects: each modified copy must fail the checker with the expected message.
#    plant NAME EXPECTED-MESSAGE-REGEX <<'CODE' python statements on d (dashboard), panels, t CODE
plant() {
  local name=$1 expect=$2
  "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
panels = [p for p in d["panels"] if p["type"] != "row"]
t = panels[0]["targets"][0]
exec(sys.stdin.read())
json.dump(d, open(sys.argv[2], "w"))' "$DASH" "$TMP/$name.json"
  # the promtool parse (slow) only where the defect is a PromQL one
  local flags=--no-promql
  [ "$expect" = "does not parse" ] && flags=
  if "$PY" "$CHECKER" $flags "$TMP/$name.json" > "$TMP/$name.out" 2>&1; then
    fail "planted defect '$name' not detected"
  elif grep -q -- "$expect" "$TMP/$name.out"; then
    pass "planted defect '$name' detected ($expect)"
  else
    fail "planted defect '$name': checker failed without '$expect'"; grep '^FAIL' "$TMP/$name.out" | head -5 | sed 's/^/     /'
  fi
}
printf '{"panels": [' > "$TMP/truncated.json"
"$PY" "$CHECKER" "$TMP/truncated.json" > "$TMP/truncated.out" 2>&1
if grep -q "not valid JSON" "$TMP/truncated.out"; then pass "planted defect 'truncated JSON' detected"
else fail "planted defect 'truncated JSON' not detected"; fi
plant duplicate-id "panel id" <<'CODE'
panels[1]["id"] = panels[0]["id"]
CODE
plant overlap "overlaps" <<'CODE'
panels[1]["gridPos"] = dict(panels[0]["gridPos"])
CODE
plant grid-overflow "outside the 24-column grid" <<'CODE'
panels[0]["gridPos"]["x"] = 22
CODE
plant undefined-variable 'undefined variable \$host' <<'CODE'
t["expr"] = t["expr"].replace('set=~"$set"', 'set=~"$set", host=~"$host"')
assert "$host" in t["expr"]
CODE
plant syntax-error "does not parse" <<'CODE'
t["expr"] = "sum(" + t["expr"]
CODE
plant unknown-function "does not parse" <<'CODE'
t["expr"] = t["expr"].replace("sum(", "summ(")
CODE
plant inputs "__inputs" <<'CODE'
d["__inputs"] = [{"name": "DS_PROMETHEUS", "type": "datasource", "pluginId": "prometheus"}]
CODE
plant no-datasource-variable 'variable "datasource"' <<'CODE'
d["templating"]["list"] = [v for v in d["templating"]["list"] if v["name"] != "datasource"]
CODE
plant hardcoded-datasource 'does not use the' <<'CODE'
panels[0]["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}
CODE
plant fixed-range 'should be \[\$__rate_interval\]' <<'CODE'
t["expr"] = 'sum(rate(pidfd_process_exits_total{job=~"$job", instance=~"$instance"}[5m]))'
CODE
plant bare-counter "outside rate" <<'CODE'
t["expr"] = 'sum(pidfd_process_exits_total{job=~"$job", instance=~"$instance"})'
CODE
plant no-job-filter 'lacks job' <<'CODE'
t["expr"] = 'sum(pidfd_zombies{set=~"$set"})'
CODE
plant unchained-set 'must be chained' <<'CODE'
next(v for v in d["templating"]["list"] if v["name"] == "set")["query"]["query"] = "label_values(pidfd_processes, set)"
CODE
plant no-description 'has no description' <<'CODE'
del panels[0]["description"]
CODE
plant kube-without-pod-filter 'lacks namespace' <<'CODE'
k = next(p for p in panels if "kube_pod_container_info" in p["targets"][0]["expr"])["targets"][0]
k["expr"] = k["expr"].replace(', pod=~"$k8s_pod"', "")
assert 'pod=~"$k8s_pod"' not in k["expr"]
CODE
plant container-regex-keeps-runtime 'must capture the 64-hex container ID' <<'CODE'
next(v for v in d["templating"]["list"] if v["name"] == "container")["regex"] = "/(.+)/"
CODE
plant container-from-pidfd 'label_values(kube_pod_container_info' <<'CODE'
v = next(v for v in d["templating"]["list"] if v["name"] == "container")
v["query"]["query"] = 'label_values(pidfd_processes{job=~"$job", instance=~"$instance"}, set)'
CODE

# 3. provisioning files
check "provisioning/dashboards.yml is a Grafana file provider" "$PY" - "$SRC/dashboards/provisioning/dashboards.yml" <<'PYEOF'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
assert d["apiVersion"] == 1, d
p = d["providers"][0]
assert p["type"] == "file" and p["options"]["path"].startswith("/"), p
assert p["name"] and isinstance(p.get("updateIntervalSeconds", 10), int), p
PYEOF
check "provisioning/datasources.yml is a Prometheus data source" "$PY" - "$SRC/dashboards/provisioning/datasources.yml" <<'PYEOF'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
assert d["apiVersion"] == 1, d
ds = d["datasources"][0]
assert ds["type"] == "prometheus" and ds["url"].startswith("http") and ds["access"] in ("proxy", "direct"), ds
PYEOF

finish
