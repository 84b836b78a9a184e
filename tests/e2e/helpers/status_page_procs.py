#!/usr/bin/env python3
"""Process fixtures for tests/e2e/status_page_test.sh and hostile_input_test.sh.

  status_page_procs.py zombie PARENT_COMM_HEX CHILD_COMM_HEX PIDFILE
      Renames itself (prctl PR_SET_NAME) to PARENT_COMM, forks a child that renames itself
      to CHILD_COMM and waits; writes the child's PID to PIDFILE (atomically) once the child
      has its name. SIGUSR1 makes the child exit with status 7; the parent never reaps it,
      so it stays a zombie until the parent is killed (SIGTERM/SIGKILL).
  status_page_procs.py hold [ARGS...]
      Waits for a signal; ARGS are ignored (they are there to be read from /proc/PID/cmdline).
  status_page_procs.py rename COMM_HEX READYFILE [ARGS...]
      Renames itself to COMM (prctl), creates READYFILE, then waits like hold.

Names are given in hex so that any byte (but NUL) can be passed; the kernel keeps 15 bytes.
Only the standard library is used (ctypes for prctl), so any python3 runs it.
"""
import ctypes
import os
import signal
import sys

PR_SET_NAME = 15
_libc = ctypes.CDLL(None, use_errno=True)


def set_comm(name: bytes) -> None:
    if _libc.prctl(PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), "prctl(PR_SET_NAME)")


def wait_forever() -> None:
    while True:
        signal.pause()


def write_atomically(path: str, text: str) -> None:
    temporary = path + ".tmp"
    with open(temporary, "w") as f:
        f.write(text)
    os.rename(temporary, path)


def zombie(parent_comm: bytes, child_comm: bytes, pidfile: str) -> None:
    set_comm(parent_comm)
    # SIGCHLD stays at SIG_DFL: the exited child is not reaped automatically.
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        signal.signal(signal.SIGUSR1, lambda *_: os._exit(7))
        set_comm(child_comm)
        os.write(write_end, b"r")
        os.close(write_end)
        wait_forever()
    os.close(write_end)
    if os.read(read_end, 1) != b"r":
        sys.exit("child failed to start")
    os.close(read_end)
    write_atomically(pidfile, f"{pid}\n")
    wait_forever()


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    mode = sys.argv[1]
    if mode == "zombie" and len(sys.argv) == 5:
        zombie(bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]), sys.argv[4])
    elif mode == "hold":
        wait_forever()
    elif mode == "rename" and len(sys.argv) >= 4:
        set_comm(bytes.fromhex(sys.argv[2]))
        write_atomically(sys.argv[3], f"{os.getpid()}\n")
        wait_forever()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
