#!/usr/bin/env bash
# Checks of the Prometheus rules in dashboards/rules/:
#   - `promtool check rules --lint-fatal` accepts the rules file (syntax, PromQL, templates,
#     no duplicate rules);
#   - `promtool test rules` passes every unit test in dashboards/rules/tests/*.test.yml;
#   - conventions: every alert has a severity label, a static summary, a description naming the
#     instance (and the set where the metric has one), and a runbook_url whose anchor is a
#     heading of docs/runbook.md;
#   - coverage: every alert name (and every severity of it) has a test case in which it fires
#     and a test case in which it must not fire;
#   - the firing cases are real: with any one alert's expression replaced by one that never
#     fires, `promtool test rules` must fail.
# Usage: rules_test.sh <exporter-binary (unused)> <source-dir>
set -uo pipefail
SRC=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/e2e/lib.sh"
PY=$(find_python) || { fail "python3 with PyYAML"; finish; }
command -v promtool >/dev/null || { fail "promtool not installed (Debian package prometheus)"; finish; }
RULES=$SRC/dashboards/rules/pidfd_exporter.rules.yml
TESTS=("$SRC"/dashboards/rules/tests/*.test.yml)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

check "promtool check rules --lint=all --lint-fatal" promtool check rules --lint=all --lint-fatal "$RULES"
check "promtool test rules (${#TESTS[@]} file(s))" promtool test rules "${TESTS[@]}"

# Conventions and coverage (prints ok/FAIL lines and its own summary line).
"$PY" - "$RULES" "$SRC/docs/runbook.md" "${TESTS[@]}" > "$TMP/conventions.out" 2>&1 <<'PYEOF'
import re, sys, yaml
rules_path, runbook_path, test_paths = sys.argv[1], sys.argv[2], sys.argv[3:]
passed = failed = 0
def check(cond, msg):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL " + msg)
rules = yaml.safe_load(open(rules_path))
anchors = set()
for line in open(runbook_path):
    m = re.match(r"^#+\s+(.*?)\s*$", line)
    if m:  # GitHub anchors: lower case, spaces to dashes, punctuation dropped
        anchors.add(re.sub(r"[^a-z0-9 _-]", "", m.group(1).lower()).replace(" ", "-"))
alerts = []
for g in rules["groups"]:
    for r in g["rules"]:
        if "alert" in r:
            alerts.append(r)
check(len(alerts) >= 8, f"expected at least 8 alerting rules, found {len(alerts)}")
for r in alerts:
    name, labels, ann = r["alert"], r.get("labels", {}), r.get("annotations", {})
    check(re.fullmatch(r"Pidfd[A-Z][A-Za-z]+", name) is not None, f"{name}: not CamelCase with prefix Pidfd")
    check(labels.get("severity") in ("critical", "warning", "info"), f"{name}: severity label missing or unknown")
    check(bool(ann.get("summary")) and "{{" not in ann["summary"], f"{name}: summary missing or templated (must be static)")
    desc = ann.get("description", "")
    check("$labels.instance" in desc, f"{name}: description does not name the instance")
    if re.search(r"pidfd_(?!exporter)", r["expr"]):  # per-set metrics (not pidfd_exporter_*, not job="pidfd_exporter")
        check("$labels.set" in desc, f"{name}: description does not name the set")
    url = ann.get("runbook_url", "")
    m = re.fullmatch(r"https://\S+/docs/runbook\.md#([a-z0-9-]+)", url)
    check(m is not None and m.group(1) == name.lower(), f"{name}: runbook_url {url!r} should end in docs/runbook.md#{name.lower()}")
    check(m is not None and m.group(1) in anchors, f"{name}: docs/runbook.md has no heading for anchor #{name.lower()}")
# coverage: (alertname, severity) fired somewhere; alertname checked as not firing somewhere
fired, quiet = set(), set()
for path in test_paths:
    for t in yaml.safe_load(open(path))["tests"]:
        for a in t.get("alert_rule_test", []):
            exp = a.get("exp_alerts") or []
            if exp:
                for e in exp:
                    fired.add((a["alertname"], e.get("exp_labels", {}).get("severity")))
            else:
                quiet.add(a["alertname"])
for r in alerts:
    name, sev = r["alert"], r.get("labels", {}).get("severity")
    check((name, sev) in fired, f"{name} ({sev}): no test case in which it fires")
    check(name in quiet, f"{name}: no test case in which it must not fire")
print(f"{passed} passed, {failed} failed")
PYEOF
grep '^FAIL' "$TMP/conventions.out"
add_counts "$TMP/conventions.out"
echo "conventions and coverage: $(tail -1 "$TMP/conventions.out")"

# Mutation: each alerting rule in turn made to never fire; the unit tests must notice.
mkdir -p "$TMP/mut/tests"
cp "${TESTS[@]}" "$TMP/mut/tests/"
count=$("$PY" -c 'import sys, yaml; print(sum(1 for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"] if "alert" in r))' "$RULES")
for ((i = 0; i < count; i++)); do
  desc=$("$PY" - "$RULES" "$TMP/mut/pidfd_exporter.rules.yml" "$i" <<'PYEOF'
import sys, yaml
rules = yaml.safe_load(open(sys.argv[1]))
alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
a = alerts[int(sys.argv[3])]
a["expr"] = "vector(1) == 0"   # never fires
yaml.safe_dump(rules, open(sys.argv[2], "w"), sort_keys=False)
print(f'{a["alert"]} ({a["labels"]["severity"]})')
PYEOF
)
  if promtool test rules "$TMP"/mut/tests/*.test.yml > "$TMP/mut.out" 2>&1; then
    fail "mutation: $desc made to never fire, yet the unit tests pass"
  else
    pass "mutation: $desc made to never fire is caught by the unit tests"
  fi
done

finish
