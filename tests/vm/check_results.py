#!/usr/bin/env python3
"""Checks the output of tests/vm/run_workload.sh (a VM's serial console or a host run)
against the workload's own measurements. Every assertion prints one line, "ok" or "FAIL"
with the numbers; the last line is "N passed, M failed"; exit status 1 on any failure.

  check_results.py OUTPUT_FILE --features reap_events=0,pidfs_identity=0,... [--oom] [--cpu-report-only]

Assertions (tests/vm/README.md):
  - exits: exact counts per set, reason and code, and no other series in those sets
  - zombies: 4 lingering zombies of set linger, all under parent "workload", then 0
  - reap latency per hold set: count = children, mean within max(1 ms, 2 %) of the mean hold
    the parent measured on its own clock (of the interval its and the child's stamps bound the
    true mean to); burst: 200 observations, mean no longer than the burst took
  - PID reuse: every round reused the PID, reuse_a has exactly 40 exits with code 0 and
    reuse_b exactly 40 with code 7
  - CPU per hold set: with the eBPF probe (final_runtime) what the parents' wait4() counted, to
    5 us per child (at most 1 ms more per child where the parent reaps at once: wait4() then
    misses the end of the exit); without it, less. Left out for a set whose exits were not
    all counted with resources (a known bug, tests/vm/README.md); --cpu-report-only prints the
    lines as "info" without counting them (the host's fallback run, the most exposed to it)
  - kernel features as expected; no missed or unattributed exits
  - with --oom (the VM: cgroup v2 with the memory controller): the OOM kill in set oom counted
    as oom_killed and the kill -9 beside it as killed, by the exporter with both sources and by
    the one with the cgroup counter alone
"""
import re
import sys

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
SETS = ["hold0", "hold20", "hold300", "reuse_a", "reuse_b", "burst", "linger"]
# Exits the workload makes: set -> {(reason, code): count}
EXPECTED_EXITS = {
    "hold0": {("exited", "3"): 20},
    "hold20": {("exited", "3"): 20},
    "hold300": {("exited", "3"): 5},
    "reuse_a": {("exited", "0"): 40},
    "reuse_b": {("exited", "7"): 40},
    "burst": {("exited", str(code)): 50 for code in range(4)},
    "linger": {("killed", "SIGKILL"): 4},
}
MILLISECOND = 1e-3
CPU_ROUNDING_PER_CHILD = 5e-6
# The end of an exit after the parent is notified: up to ~300 us per child measured under QEMU's
# emulation (its vCPU can be descheduled there), ~1 us natively.
EXIT_TAIL_PER_CHILD = 1e-3


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, condition, detail=""):
        if condition:
            self.passed += 1
            print(f"ok   {name}" + (f": {detail}" if detail else ""))
        else:
            self.failed += 1
            print(f"FAIL {name}" + (f": {detail}" if detail else ""))
        return condition


def parse_scrape(lines):
    samples = {}
    for line in lines:
        match = SAMPLE.match(line.strip())
        if not match:
            continue
        labels = tuple(sorted(LABEL.findall(match.group(3) or "")))
        samples[(match.group(1), labels)] = float(match.group(4))
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def sections(text):
    """TRUTH lines and the two scrapes from the RESULTS block."""
    begin = text.rfind("==== RESULTS BEGIN ====")
    if begin < 0:
        return None
    block = text[begin:].splitlines()
    truths, scrapes, current = {}, {}, None
    kernel = "?"
    for line in block:
        line = line.rstrip("\r")
        if line.startswith("KERNEL "):
            kernel = line[7:]
        elif line.startswith("TRUTH "):
            fields = dict(field.split("=", 1) for field in line.split()[1:])
            truths[fields["set"]] = fields
        elif line.startswith("==== SCRAPE ") and line.endswith(" BEGIN ===="):
            current = line.split()[2]
            scrapes[current] = []
        elif line.startswith("==== SCRAPE ") and line.endswith(" END ===="):
            current = None
        elif current:
            scrapes[current].append(line)
    return kernel, truths, {name: parse_scrape(lines) for name, lines in scrapes.items()}


def check_exits(checker, final):
    for set_name, expected in EXPECTED_EXITS.items():
        seen = {}
        for (name, labels), sample in final.items():
            labels = dict(labels)
            if name == "pidfd_process_exits_total" and labels.get("set") == set_name and sample:
                seen[(labels["reason"], labels["code"])] = int(sample)
        checker.check(f"exits of {set_name} exact", seen == expected,
                      f"expected {sorted(expected.items())}, scraped {sorted(seen.items())}")


def check_zombies(checker, zombies, final):
    checker.check("4 linger zombies while they linger",
                  value(zombies, "pidfd_zombies", set="linger") == 4,
                  f"pidfd_zombies{{set=\"linger\"}} = {value(zombies, 'pidfd_zombies', set='linger')}")
    by_parent = {dict(labels).get("parent"): sample for (name, labels), sample in zombies.items()
                 if name == "pidfd_zombies_by_parent" and dict(labels).get("set") == "linger"}
    checker.check("linger zombies all under their parent \"workload\"", by_parent == {"workload": 4.0},
                  f"pidfd_zombies_by_parent{{set=\"linger\"}} = {by_parent}")
    remaining = {set_name: value(final, "pidfd_zombies", set=set_name) for set_name in SETS}
    checker.check("no zombies left after the reaps", all(count == 0 for count in remaining.values()),
                  f"{remaining}")


def check_reap_latency(checker, truths, final):
    for set_name in ["hold0", "hold20", "hold300"]:
        truth = truths.get(set_name)
        if not checker.check(f"workload measured {set_name}", truth is not None and truth["wrong_status"] == "0",
                             f"{truth}"):
            continue
        count = int(truth["count"])
        truth_mean = int(truth["sum_ns"]) / count / 1e9
        # The true latency lies between the parent's wake-up (after the exit) to the start of
        # its waitpid (before the reap) and the child's last stamp (before the exit) to the end
        # of waitpid (after the reap); on an idle machine the two are microseconds apart.
        low = int(truth["low_sum_ns"]) / count / 1e9
        high = int(truth["high_sum_ns"]) / count / 1e9
        scraped_count = value(final, "pidfd_reap_latency_seconds_count", set=set_name) or 0
        scraped_sum = value(final, "pidfd_reap_latency_seconds_sum", set=set_name) or 0
        checker.check(f"reap latency observations of {set_name}", scraped_count == count,
                      f"{scraped_count:.0f} observed, {count} reaps")
        mean = scraped_sum / scraped_count if scraped_count else float("nan")
        allowed = max(MILLISECOND, 0.02 * truth_mean)
        error = mean - high if mean > high else mean - low if mean < low else 0.0
        ratio = mean / truth_mean if truth_mean > 0 else float("inf")
        checker.check(f"reap latency of {set_name} within max(1 ms, 2 %)", abs(error) <= allowed,
                      f"exporter mean {mean * 1e3:.3f} ms, parent's mean hold {truth_mean * 1e3:.3f} ms "
                      f"(true mean between {low * 1e3:.3f} and {high * 1e3:.3f}; holds {int(truth['min_ns']) / 1e6:.3f}"
                      f"-{int(truth['max_ns']) / 1e6:.3f}), error {error * 1e3:+.3f} ms beyond that, "
                      f"allowed {allowed * 1e3:.3f} ms, ratio {ratio:.2f}x")
    # Healthy parents (holds of at most 300 ms, a burst reaped at once) must not look slow:
    # PidfdSlowReaping fires on a p99 above 10 s (dashboards/rules); before reap checks, 6.1
    # reported these reaps seconds late.
    for set_name in ["hold0", "hold20", "hold300", "burst"]:
        count = value(final, "pidfd_reap_latency_seconds_count", set=set_name) or 0
        within = next((sample for (name, labels), sample in final.items()
                       if name == "pidfd_reap_latency_seconds_bucket" and ("set", set_name) in labels
                       and float(dict(labels)["le"]) == 1.0), None)
        checker.check(f"every reap of {set_name} within 1 s (PidfdSlowReaping quiet)",
                      count > 0 and within == count, f"{within} of {count:.0f} in le=1")
    burst = truths.get("burst")
    if checker.check("workload measured burst", burst is not None and burst["wrong_status"] == "0", f"{burst}"):
        count = value(final, "pidfd_reap_latency_seconds_count", set="burst") or 0
        total = value(final, "pidfd_reap_latency_seconds_sum", set="burst") or 0
        span = int(burst["span_ns"]) / 1e9
        checker.check("reap latency observations of burst", count == 200, f"{count:.0f} observed, 200 reaps")
        mean = total / count if count else float("nan")
        checker.check("burst reap latency no longer than the burst took",
                      count > 0 and mean <= span + MILLISECOND,
                      f"exporter mean {mean * 1e3:.3f} ms, all 200 exited and were reaped within {span * 1e3:.3f} ms")


def check_reuse(checker, truths, final):
    reuse = truths.get("reuse")
    checker.check("workload forced PID reuse in every round",
                  reuse is not None and reuse["reused"] == reuse["rounds"] == "40" and reuse["wrong_status"] == "0",
                  f"{reuse}")
    misattributed = 0
    for (name, labels), sample in final.items():
        labels = dict(labels)
        if name != "pidfd_process_exits_total" or labels.get("set") not in ("reuse_a", "reuse_b"):
            continue
        right = (labels["set"], labels["code"]) in (("reuse_a", "0"), ("reuse_b", "7"))
        if not right:
            misattributed += int(sample)
    a = value(final, "pidfd_process_exits_total", set="reuse_a", reason="exited", code="0") or 0
    b = value(final, "pidfd_process_exits_total", set="reuse_b", reason="exited", code="7") or 0
    checker.check("PID reuse never misattributes an exit", misattributed == 0 and a == 40 and b == 40,
                  f"reuse_a code 0: {a:.0f}/40, reuse_b code 7: {b:.0f}/40, "
                  f"exits counted with a wrong code or set: {misattributed}")


class ReportOnly:
    """A checker that prints its lines as "info" and counts nothing."""

    def check(self, name, condition, detail=""):
        print(f"info {name} ({'as expected' if condition else 'NOT as expected'})" + (f": {detail}" if detail else ""))
        return condition


def check_exit_cpu(checker, truths, final, features):
    """The CPU of each hold set's children against what wait4() gave their parent."""
    probe = value(final, "pidfd_exporter_kernel_feature", feature="final_runtime") == 1
    compared = 0
    for set_name in ["hold0", "hold20", "hold300"]:
        truth = truths.get(set_name)
        if truth is None or "cpu_us" not in truth:
            checker.check(f"workload measured the CPU of {set_name}", False, f"{truth}")
            continue
        count = int(truth["count"])
        # Exits counted without their resources (a known bug: tests/vm/README.md, "Known") make
        # the sum another one; reported, and the comparison left out then.
        observed = value(final, "pidfd_process_peak_rss_bytes_count", set=set_name) or 0
        if observed != count:
            print(f"info CPU of {set_name} not compared: resources of {observed:.0f} of {count} exits counted "
                  f"(known bug, tests/vm/README.md)")
            continue
        compared += 1
        parent = int(truth["cpu_us"]) / 1e6
        exporter = sum(value(final, "pidfd_process_cpu_seconds_total", set=set_name, mode=mode) or 0
                       for mode in ("user", "system"))
        error = exporter - parent
        detail = (f"exporter {exporter * 1e3:.3f} ms, parents' wait4() {parent * 1e3:.3f} ms, "
                  f"{error * 1e6 / count:+.1f} us per child ({count})")
        if probe and int(truth["hold_ms"]) > 0:
            # The child was done when its parent reaped it: wait4() read its final run time,
            # rounded down to 1 us per mode.
            allowed = count * CPU_ROUNDING_PER_CHILD
            checker.check(f"CPU of {set_name} is what wait4() counted (final_runtime)", abs(error) <= allowed,
                          detail + f", allowed +-{allowed * 1e6 / count:.0f} us per child")
        elif probe:
            # Reaped at once: wait4() can run while the child still executes the last of its
            # exit (after it notified its parent, before its final switch), and misses that part;
            # the probe reads the run time once the task is freed. Never less than wait4()'s.
            allowed = count * EXIT_TAIL_PER_CHILD
            checker.check(f"CPU of {set_name} at least what wait4() counted, and the end of each exit "
                          f"(final_runtime)", -count * CPU_ROUNDING_PER_CHILD <= error <= allowed,
                          detail + f", allowed 0 to {allowed * 1e6 / count:.0f} us per child")
        else:
            # The records stop before the address space is torn down: short, never over.
            checker.check(f"CPU of {set_name} short of wait4()'s (exit records alone)", 0 < -error < parent,
                          detail)
    # The known bug may leave a set out, not all three: else this check could pass with the
    # exit resources broken.
    checker.check("CPU compared for at least one hold set", compared > 0, f"{compared} of 3")


def check_oom(checker, truths, scrapes):
    truth = truths.get("oom")
    if not checker.check("workload made an OOM kill and a kill -9 in set oom",
                         truth is not None and truth["hog_sigkill"] == "1" and truth["sibling_sigkill"] == "1",
                         f"{truth}"):
        return
    for scrape_name, kernel_log in (("oom_both", 1), ("oom_counter", 0)):
        scrape = scrapes.get(scrape_name, {})
        sources = {feature: value(scrape, "pidfd_exporter_kernel_feature", feature=feature)
                   for feature in ("oom_kernel_log", "oom_cgroup_counter")}
        checker.check(f"{scrape_name}: sources kernel_log={kernel_log}, cgroup_counter=1 (cgroup v2)",
                      sources == {"oom_kernel_log": kernel_log, "oom_cgroup_counter": 1}, f"{sources}")
        exits = {dict(labels).get("reason"): sample for (name, labels), sample in scrape.items()
                 if name == "pidfd_process_exits_total" and dict(labels).get("set") == "oom" and sample}
        checker.check(f"{scrape_name}: the OOM kill is oom_killed, the kill -9 killed",
                      exits == {"oom_killed": 1.0, "killed": 1.0}, f"exits of set oom by reason: {exits}")


def check_health(checker, final, features):
    for feature, expected in features.items():
        got = value(final, "pidfd_exporter_kernel_feature", feature=feature)
        checker.check(f"kernel_feature {feature} = {expected}", got == expected, f"scraped {got}")
    # Reaps are found by checks exactly when the kernel has no reap events, and this workload's
    # few zombies never reach the cap on checks per second.
    checks = value(final, "pidfd_exporter_reap_checks_total")
    delayed = value(final, "pidfd_exporter_reap_checks_delayed_total")
    if features.get("reap_events") == 0:
        checker.check("reap checks made, none delayed by the cap", (checks or 0) > 0 and delayed == 0,
                      f"checks {checks}, delayed {delayed}")
    elif features.get("reap_events") == 1:
        checker.check("no reap checks with reap events", checks == 0, f"checks {checks}")
    # reuse_b may exit at once after its exec: seen by the connector alone is fine there.
    missed = {set_name: value(final, "pidfd_exporter_missed_exits_total", set=set_name) or 0 for set_name in SETS}
    unattributed = value(final, "pidfd_exporter_unattributed_exits_total") or 0
    checker.check("every exit seen through a pidfd (reuse_b aside)",
                  all(count == 0 for set_name, count in missed.items() if set_name != "reuse_b") and unattributed == 0,
                  f"missed {missed}, unattributed {unattributed:.0f}")


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    features = {}
    if len(sys.argv) >= 4 and sys.argv[2] == "--features":
        for item in sys.argv[3].split(","):
            name, wanted = item.split("=")
            features[name] = float(wanted)
    text = open(sys.argv[1], errors="replace").read()
    checker = Checker()
    parsed = sections(text)
    if not checker.check("results block present", parsed is not None):
        print(f"{checker.passed} passed, {checker.failed} failed")
        return 1
    kernel, truths, scrapes = parsed
    print(f"# kernel {kernel}")
    timeouts = [line for line in text.splitlines() if line.startswith("TIMEOUT ") or "WORKLOAD_ERROR" in line]
    checker.check("workload ran without timeouts or errors", not timeouts, "; ".join(timeouts))
    final = scrapes.get("final", {})
    zombies = scrapes.get("zombies", {})
    if checker.check("final scrape present", bool(final)):
        check_exits(checker, final)
        check_zombies(checker, zombies, final)
        check_reap_latency(checker, truths, final)
        check_reuse(checker, truths, final)
        check_exit_cpu(ReportOnly() if "--cpu-report-only" in sys.argv[4:] else checker, truths, final, features)
        check_health(checker, final, features)
    if "--oom" in sys.argv[4:]:
        check_oom(checker, truths, scrapes)
    print(f"{checker.passed} passed, {checker.failed} failed")
    return 0 if checker.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
