#!/usr/bin/env python3
"""Writes a TEST COPY of dashboards/rules/pidfd_exporter.rules.yml for
tests/e2e/prometheus_e2e_test.sh, in which only durations and thresholds are shortened so that a
real Prometheus fires the alerts within seconds. The PromQL expressions, labels and annotations
stay exactly the shipped ones (checked below), so the test proves the shipped expressions.

    shorten_rules.py SHIPPED.yml TEST-COPY.yml

Substitutions (each must match exactly as often as listed, or this script fails):
  - every alert's `for:` becomes 2s;
  - PidfdZombiesLingering (warning): oldest zombie older than 300 s becomes older than 3 s.
  The critical threshold (1800 s) is kept, so the critical alert must NOT fire in the test.
"""
import re
import sys

import yaml

SUBSTITUTIONS = [
    # (regex, replacement, expected number of matches)
    (r"(?m)^(\s+for:\s*)\S+\s*$", r"\g<1>2s", None),   # every for:, counted below
    (r"(time\(\) - pidfd_oldest_zombie_exit_timestamp_seconds > )300\b", r"\g<1>3", 1),
]


def main():
    src, dst = sys.argv[1], sys.argv[2]
    text = open(src).read()
    shipped = yaml.safe_load(text)
    n_for = sum(1 for g in shipped["groups"] for r in g["rules"] if "for" in r)
    out = text
    for pattern, repl, expected in SUBSTITUTIONS:
        out, n = re.subn(pattern, repl, out)
        expected = n_for if expected is None else expected
        if n != expected:
            sys.exit(f"shorten_rules: {pattern!r} matched {n} times, expected {expected}")
    copy = yaml.safe_load(out)
    # Only the two knobs may differ.
    for g_s, g_c in zip(shipped["groups"], copy["groups"]):
        for r_s, r_c in zip(g_s["rules"], g_c["rules"]):
            for key in set(r_s) | set(r_c):
                if key == "for":
                    continue
                a, b = r_s.get(key), r_c.get(key)
                if key == "expr" and a != b:
                    a = re.sub(r"> 300\b", "> 3", a)
                if a != b:
                    sys.exit(f"shorten_rules: {r_s.get('alert') or r_s.get('record')}: {key} changed: {r_s.get(key)!r} -> {r_c.get(key)!r}")
    with open(dst, "w") as fh:
        fh.write("# GENERATED TEST COPY by tests/e2e/shorten_rules.py from the shipped rules: only `for:` and\n"
                 "# the PidfdZombiesLingering warning threshold are shortened; expressions are the shipped ones.\n")
        fh.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
