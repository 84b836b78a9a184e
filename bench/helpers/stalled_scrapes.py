#!/usr/bin/env python3
"""Scrape latency while N stalled connections are held open (bench/stalled.sh).

    stalled_scrapes.py HOST:PORT STALLED SCRAPES [CA_FILE] [PID]

Opens STALLED connections that each send half a request line ("GET /metr"), or with
CA_FILE half a TLS ClientHello, and keeps that many open: one that the server closes is
re-opened within a second. Then times SCRAPES scrapes of /metrics in a row (connect,
handshake, request, read to the end), 50 ms apart, and prints one line:
    p50_ms p99_ms max_ms failed threads rss_kib
threads and rss_kib are the server's (PID) while the connections are held (0 without PID).
Loopback only; every loop is bounded.
"""
import select
import socket
import ssl
import sys
import threading
import time
import resource

HOST, PORT = sys.argv[1].rsplit(":", 1)
PORT = int(PORT)
STALLED = int(sys.argv[2])
SCRAPES = int(sys.argv[3])
CA_FILE = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else ""
PID = int(sys.argv[5]) if len(sys.argv) > 5 else 0


def half_request():
    if not CA_FILE:
        return b"GET /metr"
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    handshake = ssl.create_default_context(cafile=CA_FILE).wrap_bio(incoming, outgoing, server_hostname=HOST)
    try:
        handshake.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    return hello[: len(hello) // 2]


class Holder(threading.Thread):
    def __init__(self, count):
        super().__init__(daemon=True)
        self.count, self.payload = count, half_request()
        self.held = {}
        self.stop = threading.Event()
        self.ready = threading.Event()

    def open_one(self):
        try:
            s = socket.create_connection((HOST, PORT), timeout=10)
            s.sendall(self.payload)
            s.setblocking(False)
            self.held[s.fileno()] = s
        except OSError:
            pass

    def run(self):
        for _ in range(self.count):
            self.open_one()
        self.ready.set()
        to_open, next_tick = 0, time.monotonic() + 1
        while not self.stop.is_set():
            poller = select.poll()
            for fd in self.held:
                poller.register(fd, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
            for fd, _ in poller.poll(200):
                self.held.pop(fd).close()
                to_open += 1
            if time.monotonic() >= next_tick:
                next_tick += 1
                for _ in range(to_open):
                    self.open_one()
                to_open = 0
        for s in self.held.values():
            s.close()


def scrape(context):
    request = f"GET /metrics HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
    try:
        with socket.create_connection((HOST, PORT), timeout=30) as raw:
            s = context.wrap_socket(raw, server_hostname=HOST) if context else raw
            s.sendall(request)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data.startswith(b"HTTP/1.1 200")
    except (OSError, ssl.SSLError):
        return False


def usage():
    if not PID:
        return 0, 0
    threads = len(__import__("os").listdir(f"/proc/{PID}/task"))
    with open(f"/proc/{PID}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return threads, rss


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    context = ssl.create_default_context(cafile=CA_FILE) if CA_FILE else None
    holder = Holder(STALLED)
    holder.start()
    holder.ready.wait(120)
    scrape(context)  # warm-up
    times, failed = [], 0
    for _ in range(SCRAPES):
        start = time.monotonic()
        if not scrape(context):
            failed += 1
        times.append((time.monotonic() - start) * 1000)
        time.sleep(0.05)
    threads, rss = usage()
    holder.stop.set()
    holder.join(30)
    times.sort()
    p99 = times[min(len(times) - 1, int(0.99 * len(times) + 0.999) - 1)]
    print(f"{times[len(times) // 2]:.1f} {p99:.1f} {times[-1]:.1f} {failed} {threads} {rss}")


main()
