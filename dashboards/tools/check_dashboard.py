#!/usr/bin/env python3
"""Offline (and optionally live) checks for Grafana dashboard JSON, without a Grafana server.

    check_dashboard.py [--promtool PATH] dashboards/pidfd_exporter.json
    check_dashboard.py --prom http://127.0.0.1:9090 --var job=pidfd_exporter --var set=e2e \
        --deadline 60 dashboards/pidfd_exporter.json

Offline checks (always):
  structure   schemaVersion, uid, title; no __inputs (they only work for UI import, not file
              provisioning); a `datasource` variable of type datasource (prometheus); query
              variables job -> instance -> set chained with label_values(); every panel and target
              uses the ${datasource} variable; every panel has a title, description and unit; every
              target a unique refId and an expr.
  layout      unique panel ids (rows and their children included); gridPos integers inside the
              24-column grid; no two panels overlap.
  variables   every $var / ${var} / [[var]] used anywhere (exprs, legends, titles, variable
              queries, links) is defined in templating or is a Grafana built-in.
  lint        range selectors use [$__rate_interval]; *_total counters only inside
              rate/irate/increase; every selector filters job=~"$job" and instance=~"$instance",
              except kube-state-metrics series (kube_*, another job), which filter
              namespace=~"$k8s_namespace" and pod=~"$k8s_pod" instead.
  kubernetes  the $container variable lists container IDs, the values of the set label of a
              one-set-per-container config: label_values(kube_pod_container_info{...}, container_id)
              chained on $k8s_namespace and $k8s_pod, with a regex that turns each runtime's
              container_id ("containerd://<id>", "cri-o://<id>", "docker://<id>") into the
              64-hex <id>.
  promql      every expr and every label_values() selector, with the variables substituted
              ($__rate_interval -> 1m, multi-value variables -> .*), parses: each is written as a
              recording rule into a temporary rule file and checked with `promtool check rules`
              (promtool 2.42 has no standalone PromQL parse command).

Live checks (--prom URL): expressions and variables that read kube_* series are skipped (with a
line saying so) when that Prometheus has no kube_pod_container_info. Every other target expr, with the variables substituted by the --var values
(default .+), runs as an instant query (/api/v1/query) and must return at least one series with a
finite value; every label_values() variable query must return the label. Failing queries are
retried once a second until --deadline seconds have passed.

Prints one line per failed check (and per passed live query), then "N passed, M failed"; exits 1
on any failure.
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

BUILTINS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms",
            "__dashboard", "__from", "__to", "__all", "__org", "__user", "__name", "timeFilter",
            "__timeFilter", "__auto_interval"}
VAR_RE = re.compile(r"\$\{(\w+)(?:[:.][^}]*)?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)")
SELECTOR_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
IDENT_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_VALUES_RE = re.compile(r"^\s*label_values\(\s*(.*)\s*,\s*(\w+)\s*\)\s*$", re.S)
# identifiers that are PromQL keywords/functions, not metric names
KEYWORDS = {"sum", "min", "max", "avg", "count", "by", "without", "and", "or", "unless", "on",
            "ignoring", "group_left", "group_right", "offset", "bool", "topk", "bottomk",
            "quantile", "stddev", "stdvar", "count_values", "group", "inf", "nan"}
RATE_FUNCS = {"rate", "irate", "increase"}
DS_UIDS = {"${datasource}", "$datasource"}


class Result:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, msg=None):
        self.passed += 1
        if msg:
            print(f"ok   {msg}")

    def fail(self, msg):
        self.failed += 1
        print(f"FAIL {msg}")

    def check(self, cond, msg):
        if cond:
            self.ok()
        else:
            self.fail(msg)
        return cond


def walk_panels(panels):
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels", []))


def variables_used(text):
    # "$1" is a capture reference (label_replace's replacement), not a Grafana variable:
    # Grafana leaves a name that is not a defined variable as it is.
    names = {m.group(1) or m.group(2) or m.group(3) for m in VAR_RE.finditer(text or "")}
    return {name for name in names if not name.isdigit()}


def substitute(expr, variables, values, rate_interval):
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name == "__rate_interval" or name == "__interval" or name == "__auto_interval":
            return rate_interval
        if name == "__range":
            return "1h"
        if name in ("__range_s",):
            return "3600"
        if name in ("__interval_ms", "__range_ms"):
            return "60000"
        if name in values:
            return values[name]
        v = variables.get(name)
        if v is None:
            return m.group(0)
        return ".*" if (v.get("multi") or v.get("includeAll")) else ".+"
    return VAR_RE.sub(repl, expr)


def enclosing_function(expr, pos):
    """Name of the function whose argument list contains position pos ('' if none)."""
    depth = 0
    i = pos - 1
    while i >= 0:
        c = expr[i]
        if c in ")]}":
            depth += 1
        elif c in "([{":
            if depth == 0:
                if c != "(":
                    # inside {..} or [..]: keep walking outwards
                    i -= 1
                    continue
                j = i - 1
                while j >= 0 and expr[j] == " ":
                    j -= 1
                k = j
                while k >= 0 and (expr[k].isalnum() or expr[k] == "_"):
                    k -= 1
                return expr[k + 1:j + 1]
            depth -= 1
        i -= 1
    return ""


def strip_strings(expr):
    """Replace the contents of string literals with spaces (keeps positions)."""
    return re.sub(r'"(?:[^"\\]|\\.)*"', lambda m: '"' + " " * (len(m.group(0)) - 2) + '"', expr)


def lint_expr(res, where, expr):
    bare = strip_strings(expr)
    for m in re.finditer(r"\[([^\]]*)\]", bare):
        inner = expr[m.start(1):m.end(1)]
        res.check(inner == "$__rate_interval",
                  f"{where}: range [{inner}] should be [$__rate_interval]")
    # counters only under rate/irate/increase
    for m in IDENT_RE.finditer(bare):
        name = m.group(0)
        if name.endswith("_total") and not name.startswith("set:"):
            fn = enclosing_function(bare, m.start())
            res.check(fn in RATE_FUNCS, f"{where}: counter {name} used outside rate/irate/increase (in {fn or 'top level'})")
    # every selector filters by job and instance
    selectors = list(SELECTOR_RE.finditer(bare))
    for m in selectors:
        name = m.group(1)
        if name in KEYWORDS:
            continue
        matchers = expr[m.start(2):m.end(2)]
        if name.startswith("kube_"):
            res.check('namespace=~"$k8s_namespace"' in matchers and 'pod=~"$k8s_pod"' in matchers,
                      f"{where}: kube-state-metrics selector {name}{{{matchers}}} lacks namespace=~\"$k8s_namespace\" / pod=~\"$k8s_pod\"")
            continue
        res.check('job=~"$job"' in matchers and 'instance=~"$instance"' in matchers,
                  f"{where}: selector {name}{{{matchers}}} lacks job=~\"$job\" / instance=~\"$instance\"")
    # metric names used without any {...} matchers
    covered = {m.start(1) for m in selectors}
    for m in IDENT_RE.finditer(bare):
        name = m.group(0)
        if m.start() in covered or bare[m.end():].lstrip().startswith("("):
            continue
        if name.startswith(("pidfd_", "process_", "set:", "set_le:")) or name in ("up", "scrape_duration_seconds"):
            res.fail(f"{where}: bare selector {name} without job/instance matchers")


def check_structure(res, path, d):
    res.check(isinstance(d, dict), f"{path}: top level is not an object")
    res.check(isinstance(d.get("schemaVersion"), int), f"{path}: schemaVersion missing or not an integer")
    res.check(bool(d.get("title")), f"{path}: title missing")
    uid = d.get("uid") or ""
    res.check(bool(re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid)), f"{path}: uid must be 1-40 chars of [A-Za-z0-9_-]")
    res.check("__inputs" not in d and "__requires" not in d,
              f"{path}: __inputs/__requires only work for the UI import flow; use a datasource variable")
    res.check(isinstance(d.get("panels"), list) and d["panels"], f"{path}: no panels")
    tlist = d.get("templating", {}).get("list", [])
    variables = {}
    for v in tlist:
        if not res.check(isinstance(v, dict) and v.get("name") and v.get("type"), f"{path}: variable without name/type: {v}"):
            continue
        res.check(v["name"] not in variables, f"{path}: variable {v['name']} defined twice")
        variables[v["name"]] = v
    ds = variables.get("datasource", {})
    res.check(ds.get("type") == "datasource" and ds.get("query") == "prometheus",
              f'{path}: needs a variable "datasource" of type datasource with query "prometheus"')
    chain = {"job": set(), "instance": {"job"}, "set": {"job", "instance"}}
    for name, needs in chain.items():
        v = variables.get(name)
        if not res.check(v is not None and v.get("type") == "query", f"{path}: query variable ${name} missing"):
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = LABEL_VALUES_RE.match(q)
        res.check(bool(m) and m.group(2) == name, f"{path}: ${name} should be label_values(<selector>, {name}), got {q!r}")
        res.check(needs <= variables_used(q), f"{path}: ${name} query must be chained on {sorted(needs)}: {q!r}")
        res.check(v.get("datasource", {}).get("uid") in DS_UIDS, f"{path}: ${name} does not use the ${{datasource}} variable")
        if v.get("multi") or v.get("includeAll"):
            res.check(v.get("allValue") == ".+", f"{path}: ${name} is multi/all: allValue should be .+")
    return variables


CONTAINER_ID = "0123456789abcdef" * 4


def check_kubernetes(res, path, variables):
    """The $container variable: container IDs (set names) of the chosen pods."""
    v = variables.get("container")
    if not res.check(v is not None and v.get("type") == "query", f"{path}: query variable $container missing"):
        return
    q = v.get("query")
    q = q.get("query", "") if isinstance(q, dict) else (q or "")
    m = LABEL_VALUES_RE.match(q)
    res.check(bool(m) and m.group(2) == "container_id" and m.group(1).startswith("kube_pod_container_info"),
              f"{path}: $container should be label_values(kube_pod_container_info{{...}}, container_id), got {q!r}")
    res.check({"k8s_namespace", "k8s_pod"} <= variables_used(q),
              f"{path}: $container query must be chained on $k8s_namespace and $k8s_pod: {q!r}")
    regex = v.get("regex") or ""
    ok = regex.startswith("/") and regex.endswith("/")
    if ok:
        try:
            compiled = re.compile(regex[1:-1].replace("\\/", "/"))
        except re.error:
            ok = False
    if ok:
        for runtime in ("containerd", "cri-o", "docker"):
            found = compiled.search(f"{runtime}://{CONTAINER_ID}")
            ok = ok and bool(found) and found.groups()[:1] == (CONTAINER_ID,)
        ok = ok and not compiled.search("containerd://" + CONTAINER_ID[:-1])
    res.check(ok, f"{path}: $container regex {regex!r} must capture the 64-hex container ID of "
                  f"containerd://, cri-o:// and docker:// values")


def check_layout(res, path, d):
    ids = {}
    for p in walk_panels(d.get("panels", [])):
        pid = p.get("id")
        if res.check(isinstance(pid, int), f"{path}: panel {p.get('title')!r} has no integer id"):
            res.check(pid not in ids, f"{path}: panel id {pid} used by {ids.get(pid)!r} and {p.get('title')!r}")
            ids[pid] = p.get("title")

    def boxes(panels, scope):
        out = []
        for p in panels:
            g = p.get("gridPos")
            t = f"{scope}panel {p.get('id')} {p.get('title')!r}"
            if not res.check(isinstance(g, dict) and all(isinstance(g.get(k), int) for k in "xywh"),
                             f"{path}: {t}: gridPos needs integer x, y, w, h"):
                continue
            res.check(g["x"] >= 0 and g["y"] >= 0 and g["w"] >= 1 and g["h"] >= 1 and g["x"] + g["w"] <= 24,
                      f"{path}: {t}: gridPos {g} outside the 24-column grid")
            out.append((t, g))
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                (ta, a), (tb, b) = out[i], out[j]
                overlap = a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and \
                    a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
                res.check(not overlap, f"{path}: {ta} {a} overlaps {tb} {b}")

    top = d.get("panels", [])
    boxes(top, "")
    for p in top:
        if p.get("type") == "row" and p.get("collapsed"):
            boxes(p.get("panels", []), f"row {p.get('title')!r} / ")
        elif p.get("type") == "row":
            res.check(not p.get("panels"), f"{path}: expanded row {p.get('title')!r} must not hold panels")


def collect_targets(res, path, d, variables):
    """Checks panels and targets; returns [(where, expr, target)]."""
    targets = []
    for p in walk_panels(d.get("panels", [])):
        if p.get("type") == "row":
            continue
        where = f"panel {p.get('id')} {p.get('title')!r}"
        res.check(bool(p.get("title")), f"{path}: panel {p.get('id')} has no title")
        res.check(bool(p.get("description")), f"{path}: {where} has no description")
        res.check(bool(p.get("fieldConfig", {}).get("defaults", {}).get("unit")), f"{path}: {where} has no unit")
        res.check(p.get("datasource", {}).get("uid") in DS_UIDS, f"{path}: {where} does not use the ${{datasource}} variable")
        ts = p.get("targets") or []
        res.check(bool(ts), f"{path}: {where} has no targets")
        refs = set()
        for t in ts:
            ref = t.get("refId")
            res.check(bool(ref) and ref not in refs, f"{path}: {where}: missing or duplicate refId {ref!r}")
            refs.add(ref)
            res.check(t.get("datasource", {}).get("uid") in DS_UIDS, f"{path}: {where} {ref}: target does not use ${{datasource}}")
            expr = t.get("expr") or ""
            if res.check(bool(expr.strip()), f"{path}: {where} {ref}: empty expr"):
                targets.append((f"{where} {ref}", expr, t))
        if p.get("type") == "heatmap":
            res.check(all(t.get("format") == "heatmap" for t in ts), f"{path}: {where}: heatmap targets need format heatmap")
    return targets


def check_variables_defined(res, path, d, variables):
    defined = set(variables) | BUILTINS
    texts = []
    for p in walk_panels(d.get("panels", [])):
        texts.append((f"panel {p.get('id')} title", p.get("title", "")))
        texts.append((f"panel {p.get('id')} datasource", json.dumps(p.get("datasource", ""))))
        for t in p.get("targets") or []:
            texts.append((f"panel {p.get('id')} {t.get('refId')} expr", t.get("expr", "")))
            texts.append((f"panel {p.get('id')} {t.get('refId')} datasource", json.dumps(t.get("datasource", ""))))
        for link in p.get("links", []) or []:
            texts.append((f"panel {p.get('id')} link", link.get("url", "")))
    for v in variables.values():
        q = v.get("query")
        texts.append((f"variable {v['name']}", q.get("query", "") if isinstance(q, dict) else (q or "")))
        texts.append((f"variable {v['name']} datasource", json.dumps(v.get("datasource", ""))))
    for link in d.get("links", []):
        texts.append(("dashboard link", link.get("url", "")))
    for where, text in texts:
        for name in variables_used(text):
            res.check(name in defined, f"{path}: {where} uses undefined variable ${name}")


def promtool_parse(res, promtool, items):
    """items: [(where, expr)]; one rule group per expr so that errors name it."""
    groups = [{"name": f"{i:03d} {where}", "rules": [{"record": f"dashboard:expr_{i}", "expr": expr}]}
              for i, (where, expr) in enumerate(items)]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
        json.dump({"groups": groups}, fh)   # JSON is YAML
        name = fh.name
    try:
        proc = subprocess.run([promtool, "check", "rules", name], capture_output=True, text=True)
    finally:
        os.unlink(name)
    out = proc.stdout + proc.stderr
    bad = set()
    for m in re.finditer(r'group "(\d{3}) ', out):
        bad.add(int(m.group(1)))
    for i, (where, expr) in enumerate(items):
        if i in bad:
            lines = [l.strip() for l in out.splitlines() if f'"{i:03d} ' in l]
            res.fail(f"promql: {where} does not parse: {expr}\n     {' | '.join(lines)}")
        else:
            res.ok()
    if proc.returncode != 0 and not bad:
        res.fail(f"promtool check rules failed: {out.strip()}")


def prom_query(base, expr):
    url = base.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        try:
            body = json.load(e)
        except Exception:
            return None, f"HTTP {e.code}"
    except Exception as e:  # connection refused, timeout
        return None, str(e)
    if body.get("status") != "success":
        return None, body.get("error", "query failed")
    return body["data"], None


def finite_values(data):
    vals = []
    if data["resultType"] == "vector":
        vals = [s["value"][1] for s in data["result"]]
    elif data["resultType"] == "scalar":
        vals = [data["result"][1]]
    elif data["resultType"] == "matrix":
        vals = [v[1] for s in data["result"] for v in s["values"]]
    return [float(v) for v in vals if not math.isnan(float(v))]


def live_checks(res, base, items, deadline):
    """items: [(where, expr, kind, label)]; kind 'expr' or 'label_values'."""
    data, _ = prom_query(base, "count(kube_pod_container_info)")
    if not (data and data.get("result")):
        kube = [item for item in items if "kube_" in item[1]]
        for where, _, _, _ in kube:
            print(f"skip live: {where}: no kube-state-metrics series (kube_pod_container_info) in this Prometheus")
        items = [item for item in items if "kube_" not in item[1]]
    pending = list(items)
    end = time.monotonic() + deadline
    last_reason = {}
    while True:
        still = []
        for where, expr, kind, label in pending:
            data, error = prom_query(base, expr)
            if error:
                last_reason[where] = f"error: {error}"
                still.append((where, expr, kind, label))
                continue
            if kind == "label_values":
                vals = sorted({s["metric"].get(label) for s in data["result"]} - {None})
                if vals:
                    res.ok(f"live: {where}: {label} = {', '.join(vals)}")
                    continue
                last_reason[where] = f"no series with label {label}"
            else:
                finite = finite_values(data)
                if finite:
                    res.ok(f"live: {where}: {len(data['result'])} series")
                    continue
                last_reason[where] = "empty result" if not data["result"] else "only NaN values"
            still.append((where, expr, kind, label))
        pending = still
        if not pending or time.monotonic() >= end:
            break
        time.sleep(1)
    for where, expr, kind, label in pending:
        res.fail(f"live: {where}: {last_reason.get(where)}: {expr}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--promtool", default=os.environ.get("PROMTOOL", "promtool"))
    ap.add_argument("--prom", help="base URL of a live Prometheus for the live checks")
    ap.add_argument("--var", action="append", default=[], help="name=value for the live checks")
    ap.add_argument("--rate-interval", default="1m")
    ap.add_argument("--deadline", type=float, default=0, help="seconds to keep retrying failing live queries")
    ap.add_argument("--no-promql", action="store_true", help="skip the promtool parse (faster; for tests of the other checks)")
    ap.add_argument("--live-only", action="store_true", help="with --prom: count and report only the live checks")
    args = ap.parse_args()
    values = dict(v.split("=", 1) for v in args.var)

    res = Result()
    offline = res
    if args.live_only:
        offline = Result()
        offline.fail = offline.ok = lambda *a, **k: None  # silent
    for path in args.files:
        try:
            with open(path) as fh:
                d = json.load(fh)
        except (OSError, ValueError) as e:
            res.fail(f"{path}: not valid JSON: {e}")
            continue
        if not isinstance(d, dict):
            res.fail(f"{path}: top level is not an object")
            continue
        variables = check_structure(offline, path, d)
        check_kubernetes(offline, path, variables)
        check_layout(offline, path, d)
        targets = collect_targets(offline, path, d, variables)
        check_variables_defined(offline, path, d, variables)
        for where, expr, _ in targets:
            lint_expr(offline, f"{path}: {where}", expr)

        parse_items = [(where, substitute(expr, variables, {}, args.rate_interval)) for where, expr, _ in targets]
        var_selectors = []
        for v in variables.values():
            if v.get("type") != "query":
                continue
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else (q or "")
            m = LABEL_VALUES_RE.match(q)
            if m:
                var_selectors.append((f"variable ${v['name']}", m.group(1), m.group(2)))
        parse_items += [(where, substitute(sel, variables, {}, args.rate_interval)) for where, sel, _ in var_selectors]
        if not args.live_only and not args.no_promql:
            promtool_parse(res, args.promtool, parse_items)

        if args.prom:
            live = [(where, substitute(expr, variables, values, args.rate_interval), "expr", None)
                    for where, expr, _ in targets]
            live += [(where, substitute(sel, variables, values, args.rate_interval), "label_values", label)
                     for where, sel, label in var_selectors]
            live_checks(res, args.prom, live, args.deadline)

    print(f"{res.passed} passed, {res.failed} failed")
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
