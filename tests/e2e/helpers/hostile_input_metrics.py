#!/usr/bin/env python3
"""Parses the exporter's /metrics (text format 0.0.4) strictly and checks what
tests/e2e/hostile_input_test.sh expects of hostile process names. Only the standard library.

  hostile_input_metrics.py check METRICS_FILE SPEC_JSON   one ok/FAIL line per check, then
                                                          "N passed, M failed"; exit 1 on failure
  hostile_input_metrics.py ready METRICS_FILE SPEC_JSON   exit 0 once every expected series has its value
  hostile_input_metrics.py sets METRICS_FILE METRIC       the `set` values of METRIC, one JSON list
  hostile_input_metrics.py sanitize HEX [MAX_BYTES]       the label value the exporter should make of
                                                          these raw bytes (README: invalid UTF-8 and
                                                          control bytes become U+FFFD, cut at 128 bytes)
  hostile_input_metrics.py prom-up PROM_URL JOB            exit 0 once up{job=JOB} is 1 in Prometheus
  hostile_input_metrics.py prom-check PROM_URL JOB METRICS_FILE SPEC_JSON
                                                          Prometheus holds every pidfd_processes series
                                                          of METRICS_FILE, and each expected one by an
                                                          exact label matcher; ok/FAIL lines + summary
  hostile_input_metrics.py html HEX                       the same, HTML-escaped as the status page shows it

SPEC_JSON: {"max_label_bytes": 128,
            "expect": [{"metric": "pidfd_processes", "set_hex": "...", "value": 1}],
                       (or "prefix_hex": "...": exactly one set whose name starts with it)
            "forbidden_metrics": ["evil_metric"]}
"""
import json
import re
import sys
import urllib.parse
import urllib.request

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class ParseError(Exception):
    pass


def parse_labels(line, i):
    """Parses `{name="value",...}` at line[i]; returns (labels, index after '}')."""
    labels = []
    assert line[i] == "{"
    i += 1
    while True:
        if line[i] == "}":
            return labels, i + 1
        m = LABEL_NAME.match(line, i)
        if not m:
            raise ParseError(f"bad label name at {i}")
        name = m.group(0)
        i = m.end()
        if line[i:i + 2] != '="':
            raise ParseError(f"expected =\" at {i}")
        i += 2
        value = []
        while True:
            if i >= len(line):
                raise ParseError("unterminated label value")
            c = line[i]
            if c == "\\":
                nxt = line[i + 1:i + 2]
                if nxt == "n":
                    value.append("\n")
                elif nxt in ('"', "\\"):
                    value.append(nxt)
                else:
                    raise ParseError(f"bad escape \\{nxt} at {i}")
                i += 2
            elif c == '"':
                i += 1
                break
            else:
                value.append(c)
                i += 1
        labels.append((name, "".join(value)))
        if line[i] == ",":
            i += 1
        elif line[i] != "}":
            raise ParseError(f"expected , or }} at {i}")


def parse(data):
    """Returns (samples [(name, {labels}, value)], errors [str])."""
    samples, errors = [], []
    try:
        text = data.decode("utf-8", "strict")
    except UnicodeDecodeError as e:
        return samples, [f"body is not valid UTF-8: {e}"]
    for number, line in enumerate(text.split("\n"), 1):
        if not line or line.startswith("#"):
            continue
        try:
            m = NAME.match(line)
            if not m:
                raise ParseError("no metric name")
            i = m.end()
            labels = []
            if i < len(line) and line[i] == "{":
                labels, i = parse_labels(line, i)
            if line[i:i + 1] != " ":
                raise ParseError(f"expected a space at {i}")
            value = float(line[i + 1:].split(" ")[0])
            names = [n for n, _ in labels]
            if len(set(names)) != len(names):
                raise ParseError("duplicate label name")
            samples.append((m.group(0), dict(labels), value))
        except (ParseError, IndexError, ValueError) as e:
            errors.append(f"line {number}: {e}: {line!r}")
    return samples, errors


def valid_utf8_length(data, i):
    lead = data[i]
    if lead < 0x80:
        return 1
    for length, low, high in ((2, 0xC2, 0xDF), (3, 0xE0, 0xEF), (4, 0xF0, 0xF4)):
        if low <= lead <= high:
            break
    else:
        return 0
    if i + length > len(data):
        return 0
    try:
        data[i:i + length].decode("utf-8", "strict")
    except UnicodeDecodeError:
        return 0
    return length


def sanitize(raw, max_bytes=128):
    out, size, i = [], 0, 0
    while i < len(raw):
        n = valid_utf8_length(raw, i)
        bad = n == 0 or (n == 1 and (raw[i] < 0x20 or raw[i] == 0x7F))
        piece = "\ufffd" if bad else raw[i:i + n].decode("utf-8")
        width = len(piece.encode("utf-8"))
        if size + width > max_bytes:
            break
        out.append(piece)
        size += width
        i += 1 if bad else n
    return "".join(out) or "unknown"


def html_escape(text):
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


def load(path):
    with open(path, "rb") as f:
        return parse(f.read())


def find(samples, metric, set_name, prefix=False):
    return [v for n, labels, v in samples
            if n == metric and (labels.get("set", "").startswith(set_name) if prefix else labels.get("set") == set_name)]


def expected_name(e):
    """(name, is_prefix) of an expectation."""
    if "prefix_hex" in e:
        return sanitize(bytes.fromhex(e["prefix_hex"])), True
    return sanitize(bytes.fromhex(e["set_hex"])), False


def prom_query(url, query):
    """The result vector of an instant query: [(labels, value)]."""
    full = url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(full, timeout=10) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"query {query!r}: {body}")
    return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]


def promql_string(text):
    # PromQL string literals take Go's escapes; JSON's \\, \" and \uXXXX are among them.
    # Prometheus' lexer refuses a literal U+FFFD ("invalid UTF-8 rune"): escape it.
    return json.dumps(text, ensure_ascii=False).replace("\ufffd", "\\ufffd")


def prom_check(url, job, metrics_path, spec_path):
    counts = {"passed": 0, "failed": 0}

    def check(name, ok, detail=""):
        counts["passed" if ok else "failed"] += 1
        print(("ok   - " if ok else "FAIL - ") + name + ("" if ok or not detail else f"\n     # {detail}"))

    samples, _ = load(metrics_path)
    with open(spec_path) as f:
        spec = json.load(f)
    job_matcher = "job=" + promql_string(job)
    exposed = {labels.get("set") for n, labels, _ in samples if n == "pidfd_processes"}
    stored = {labels.get("set") for labels, _ in prom_query(url, "pidfd_processes{" + job_matcher + "}")}
    check(f"Prometheus holds every pidfd_processes series of /metrics ({len(exposed)} sets)", exposed == stored,
          f"only in /metrics: {sorted(exposed - stored)}; only in Prometheus: {sorted(stored - exposed)}")
    for e in spec.get("expect", []):
        if "set_hex" not in e:
            continue
        name = sanitize(bytes.fromhex(e["set_hex"]))
        query = e["metric"] + "{" + job_matcher + ",set=" + promql_string(name) + "}"
        try:
            result = [v for _, v in prom_query(url, query)]
        except Exception as error:  # noqa: BLE001 - reported as a failed check
            result = [f"error: {error}"]
        check(f"query {query} returns {e['value']}", result == [e["value"]], f"got {result}")
    print(f"{counts['passed']} passed, {counts['failed']} failed")
    return 0 if counts["failed"] == 0 else 1


def main():
    command = sys.argv[1]
    if command == "prom-up":
        try:
            result = prom_query(sys.argv[2], "up{job=" + promql_string(sys.argv[3]) + "}")
        except Exception:  # noqa: BLE001 - not up yet
            return 1
        return 0 if [v for _, v in result] == [1.0] else 1
    if command == "prom-check":
        return prom_check(*sys.argv[2:6])
    if command == "sanitize":
        print(sanitize(bytes.fromhex(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 128))
        return 0
    if command == "html":
        print(html_escape(sanitize(bytes.fromhex(sys.argv[2]))))
        return 0
    samples, errors = load(sys.argv[2])
    if command == "sets":
        print(json.dumps(sorted({labels.get("set", "") for n, labels, _ in samples if n == sys.argv[3]}), ensure_ascii=False))
        return 0
    with open(sys.argv[3]) as f:
        spec = json.load(f)
    expect = spec.get("expect", [])
    if command == "ready":
        ok = not errors and all(
            find(samples, e["metric"], *expected_name(e)) == [e["value"]] for e in expect)
        return 0 if ok else 1

    counts = {"passed": 0, "failed": 0}

    def check(name, ok, detail=""):
        counts["passed" if ok else "failed"] += 1
        print(("ok   - " if ok else "FAIL - ") + name + ("" if ok or not detail else f"\n     # {detail}"))

    check("/metrics parses strictly (UTF-8, names, label escapes, values)", not errors, "; ".join(errors[:5]))
    check("/metrics has samples", len(samples) > 0)
    limit = spec.get("max_label_bytes", 128)
    values = [(n, k, v) for n, labels, _ in samples for k, v in labels.items()]
    too_long = [(n, k, v) for n, k, v in values if len(v.encode("utf-8")) > limit]
    check(f"every label value is at most {limit} bytes ({len(values)} values)", not too_long, repr(too_long[:3]))
    controls = [(n, k, v) for n, k, v in values if any(ord(c) < 0x20 or ord(c) == 0x7F for c in v)]
    check("no label value holds a control character", not controls, repr(controls[:3]))
    surrogates = [(n, k, v) for n, k, v in values if any(0xD800 <= ord(c) <= 0xDFFF for c in v)]
    check("no label value holds a surrogate", not surrogates, repr(surrogates[:3]))
    for e in expect:
        name, prefix = expected_name(e)
        got = find(samples, e["metric"], name, prefix)
        what = f"set={name!r}..." if prefix else f"set={name!r}"
        check(f"{e['metric']}{{{what}}} is {e['value']} ({len(name.encode())} bytes)", got == [e["value"]],
              f"got {got}; sets of {e['metric']}: {sorted({l.get('set') for n, l, _ in samples if n == e['metric']})}")
    names = {n for n, _, _ in samples}
    for forbidden in spec.get("forbidden_metrics", []):
        check(f"no injected metric {forbidden}", forbidden not in names)
    print(f"{counts['passed']} passed, {counts['failed']} failed")
    return 0 if counts["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
