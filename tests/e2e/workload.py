#!/usr/bin/env python3
"""Workload for tests/e2e/prometheus_e2e_test.sh: a parent that forks children which end in every
way the dashboard and the alerts look at, until it gets SIGTERM.

    workload.py --child-comm NAME --parent-comm NAME [--cycle SECONDS]

- the parent renames itself to --parent-comm (the `parent` label of pidfd_zombies_by_parent);
- every child renames itself to --child-comm (PR_SET_NAME: the process set matches on comm),
  lives --lifetime seconds, then ends:
    exit 0, exit 3, exit 42, SIGKILL, SIGSEGV (core dumps off), SIGTERM;
- children are reaped late on purpose: most about 0.5 s after their exit, one per cycle about
  2 s after (reap-latency buckets 0.1-1 s and 1-10 s);
- one child is never reaped: a zombie that lingers for the whole run (PidfdZombiesLingering);
- on SIGTERM/SIGINT the parent kills its living children and exits; its zombies are then
  re-parented and reaped by init/the subreaper. Children also get PR_SET_PDEATHSIG=SIGKILL.
Prints "ready" on stdout once the lingering zombie exists.
"""
import argparse
import ctypes
import os
import resource
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
libc = ctypes.CDLL(None, use_errno=True)


def set_comm(name):
    libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def spawn(comm, lifetime, end):
    """Forks a child that renames itself, lives `lifetime` s and ends with `end`."""
    pid = os.fork()
    if pid:
        return pid
    try:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        set_comm(comm)
        time.sleep(lifetime)
        if isinstance(end, signal.Signals):   # (an IntEnum: test it before int)
            signal.signal(end, signal.SIG_DFL)
            os.kill(os.getpid(), end)
            time.sleep(5)
        else:
            os._exit(end)
    finally:
        os._exit(99)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--child-comm", required=True)
    ap.add_argument("--parent-comm", required=True)
    ap.add_argument("--cycle", type=float, default=1.0)
    ap.add_argument("--lifetime", type=float, default=0.3)
    args = ap.parse_args()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    set_comm(args.parent_comm)

    living = {}   # pid -> time to reap it (after it has exited)
    lingering = spawn(args.child_comm, args.lifetime, 9)   # never reaped
    time.sleep(args.lifetime + 0.2)
    print("ready", flush=True)

    ends = [0, 3, 42, signal.SIGKILL, signal.SIGSEGV, signal.SIGTERM]
    while not stop:
        start = time.monotonic()
        exited_at = start + args.lifetime
        for i, end in enumerate(ends):
            pid = spawn(args.child_comm, args.lifetime, end)
            # the first child of each cycle is reaped ~2 s after its exit, the others ~0.5 s
            living[pid] = exited_at + (2.0 if i == 0 else 0.5)
        deadline = start + args.cycle
        while not stop and time.monotonic() < deadline:
            now = time.monotonic()
            for pid, when in list(living.items()):
                if now >= when:
                    os.waitpid(pid, 0)
                    del living[pid]
            time.sleep(0.05)

    for pid in living:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in living:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    # `lingering` stays a zombie until this process exits; then init reaps it.
    del lingering
    return 0


if __name__ == "__main__":
    sys.exit(main())
