#!/usr/bin/env python3
"""HTTP abuse against a running exporter (loopback only), used by tests/e2e/http_abuse_test.sh.

    http_abuse.py HOST:PORT CASE

Cases (each bounded in requests and time; exit 0 when every check of the case passed):
  malformed    ~50 malformed or hostile requests, one connection each
  oversized    oversized headers, header counts, URIs and bodies
  flood        3000 bad requests from 8 threads, then 500 connections reset at once
  concurrent   100 concurrent scrapers x 3 scrapes each: every scrape must succeed
  slow         slowloris: connections held open (fewer than the 8 workers): silent ones,
               byte-by-byte trickles, a body that never comes, an unread response; scrapes
               made meanwhile must succeed
Each check prints "ok   - ..." or "FAIL - ..."; the caller counts them.
"""
import concurrent.futures
import gzip
import os
import random
import socket
import struct
import sys
import threading
import time

HOST, PORT = sys.argv[1].rsplit(":", 1)
PORT = int(PORT)
failures = 0


def check(name, ok, detail=""):
    global failures
    print(("ok   - " if ok else "FAIL - ") + name + (f" ({detail})" if detail else ""), flush=True)
    if not ok:
        failures += 1


def connect(timeout=10.0):
    s = socket.create_connection((HOST, PORT), timeout=timeout)
    s.settimeout(timeout)
    return s


def exchange(payload, timeout=15.0, half_close=True):
    """Sends payload; returns (status or None, bytes received). Never raises."""
    try:
        s = connect(timeout)
    except OSError as error:
        return None, str(error).encode()
    data = b""
    try:
        try:
            s.sendall(payload)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close early on garbage; read what it said
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    status = None
    if data.startswith(b"HTTP/"):
        try:
            status = int(data.split(b" ", 2)[1])
        except (IndexError, ValueError):
            pass
    return status, data


def scrape(path="/metrics", gzip_ok=False, timeout=30.0):
    """One well-formed GET; returns (status, body)."""
    headers = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n"
    if gzip_ok:
        headers += "Accept-Encoding: gzip\r\n"
    status, data = exchange((headers + "\r\n").encode(), timeout=timeout, half_close=False)
    head, _, body = data.partition(b"\r\n\r\n")
    if b"content-encoding: gzip" in head.lower():
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError):
            return None, b""
    return status, body


def scrape_ok(gzip_ok=False, timeout=30.0):
    status, body = scrape(gzip_ok=gzip_ok, timeout=timeout)
    return status == 200 and b"pidfd_exporter_build_info" in body


def case_malformed():
    big = b"A" * 100
    requests = [
        b"", b"\r\n", b"\r\n\r\n", b"GET\r\n\r\n", b"GET /\r\n\r\n", b"GET / \r\n\r\n",
        b"GET /metrics HTTP/9.9\r\n\r\n", b"GET /metrics HTTP/1.1\r\n",  # no blank line
        b"GET /metrics HTTP/1.1\n\n", b"GET /metrics HTTP/1.1\r\nHost\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\n: empty-name\r\n\r\n", b"GET /metrics HTTP/1.1\r\n Folded: x\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"\x00\x01\x02\x03\xff\xfe\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),  # TLS hello
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # HTTP/2 preface
        b"GET http://evil.example/metrics HTTP/1.1\r\n\r\n", b"GET //metrics HTTP/1.1\r\n\r\n",
        b"GET /metrics/../metrics HTTP/1.1\r\n\r\n", b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n\r\n",
        b"GET /../../../../etc/passwd HTTP/1.1\r\n\r\n", b"GET /%00 HTTP/1.1\r\n\r\n",
        b"GET /%zz%%%% HTTP/1.1\r\n\r\n", b"GET /metrics?" + b"&" * 2000 + b" HTTP/1.1\r\n\r\n",
        b"GET /metrics#frag HTTP/1.1\r\n\r\n", b"GET * HTTP/1.1\r\n\r\n", b"OPTIONS * HTTP/1.1\r\n\r\n",
        b"TRACE /metrics HTTP/1.1\r\n\r\n", b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n",
        b"DELETE /metrics HTTP/1.1\r\n\r\n", b"PUT /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        b"PROPFIND / HTTP/1.1\r\n\r\n", b"MKCOL /x HTTP/1.1\r\n\r\n", b"BREW /pot HTTP/1.1\r\n\r\n",
        b"get /metrics http/1.1\r\n\r\n", b"G\x00ET /metrics HTTP/1.1\r\n\r\n", big * 10 + b" / HTTP/1.1\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"POST /-/reload HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n",
        b"POST /-/reload HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nabcde",
        b"POST /-/reload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzzz\r\nxx\r\n0\r\n\r\n",
        b"POST /-/reload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
        b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST /-/reload HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nAuthorization: Basic !!!notbase64!!!\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nAuthorization: Basic " + b"QUFB" * 3000 + b"\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nAccept-Encoding: " + b"gzip;q=0," * 500 + b"\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nAccept-Encoding: gzip;q=\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nAccept-Encoding: ;;;,,,q=1\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nRange: bytes=0-1,-5,99999999999-\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nIf-Modified-Since: yesterday\r\n\r\n",
        b"GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /metrics HTTP/1.0\r\n\r\n",  # pipelined
        b"HEAD /metrics HTTP/1.1\r\n\r\n", b"GET /-/reload HTTP/1.1\r\n\r\n",
        b"GET /\xff\xfe\xc0\xaf HTTP/1.1\r\n\r\n", b"GET /<script>alert(1)</script> HTTP/1.1\r\n\r\n",
    ]
    statuses = {}
    for request in requests:
        status, data = exchange(request, timeout=15.0)
        statuses[status] = statuses.get(status, 0) + 1
        if status is not None and status >= 500 and status not in (500, 503, 505):
            check("malformed: no unexpected 5xx", False, repr(request[:60]))
        # Never a file or a directory listing.
        if b"root:" in data or b"Index of" in data:
            check("malformed: nothing served from the file system", False, repr(request[:60]))
    print("     # answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=str)), flush=True)
    check(f"malformed: {len(requests)} hostile requests sent, scrape still works", scrape_ok())
    status, _ = scrape("/metrics/../etc/passwd")
    check("malformed: traversal outside the routes is 404", status in (400, 404), str(status))
    status, _ = exchange(b"DELETE /metrics HTTP/1.1\r\n\r\n")
    check("malformed: DELETE /metrics is refused", status in (400, 405, 501), str(status))


def case_oversized():
    cases = {
        "10 KB header": b"GET /metrics HTTP/1.1\r\nX-Big: " + b"x" * 10_000 + b"\r\n\r\n",
        "100 KB header": b"GET /metrics HTTP/1.1\r\nX-Big: " + b"x" * 100_000 + b"\r\n\r\n",
        "1 MB header": b"GET /metrics HTTP/1.1\r\nX-Big: " + b"x" * 1_000_000 + b"\r\n\r\n",
        "200 headers": b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n",
        "5000 headers": b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\n",
        "20 KB URI": b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n",
        "1 MB URI": b"GET /" + b"a" * 1_000_000 + b" HTTP/1.1\r\n\r\n",
        "16 KB of slashes": b"GET " + b"/" * 16_000 + b" HTTP/1.1\r\n\r\n",
        "deep ../ URI": b"GET " + b"/.." * 5000 + b"/metrics HTTP/1.1\r\n\r\n",
        "long method": b"X" * 50_000 + b" / HTTP/1.1\r\n\r\n",
        "1 MB reload body": b"POST /-/reload HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n" + b"y" * 1_000_000,
        "4 MB of newlines": b"\r\n" * 2_000_000,
    }
    for name, payload in cases.items():
        status, _ = exchange(payload, timeout=20.0)
        print(f"     # {name}: {status}", flush=True)
    check(f"oversized: {len(cases)} oversized requests sent, scrape still works", scrape_ok())


def case_flood():
    rng = random.Random(42)
    garbage = [
        lambda: os.urandom(rng.randint(1, 300)),
        lambda: b"GET /" + bytes(rng.randint(0x21, 0x7e) for _ in range(rng.randint(0, 200))) + b" HTTP/1.1\r\n\r\n",
        lambda: rng.choice([b"GET", b"POST", b"HEAD", b"XYZ", b""]) + b" " + os.urandom(20) + b"\r\n\r\n",
        lambda: b"GET /metrics HTTP/1.1\r\n" + os.urandom(rng.randint(0, 500)),
        lambda: b"POST /-/reload HTTP/1.1\r\nContent-Length: 4\r\n\r\nab",  # short body
    ]
    payloads = [rng.choice(garbage)() for _ in range(3000)]
    answered = [0]
    lock = threading.Lock()

    def send(payload):
        status, _ = exchange(payload, timeout=12.0)
        if status is not None:
            with lock:
                answered[0] += 1

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(send, payloads))
    print(f"     # 3000 bad requests in {time.monotonic() - start:.1f} s; {answered[0]} got an HTTP answer", flush=True)
    check("flood: scrape works after 3000 bad requests", scrape_ok())
    # Connections reset right after connecting (SO_LINGER 0 -> RST), with and without a partial request.
    for i in range(500):
        try:
            s = connect(5)
            if i % 2:
                s.send(b"GET /metr")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        except OSError:
            pass
    check("flood: scrape works after 500 connection resets", scrape_ok())


def case_concurrent():
    def worker(index):
        ok = 0
        for attempt in range(3):
            if scrape_ok(gzip_ok=(index + attempt) % 2 == 0, timeout=60.0):
                ok += 1
        return ok

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(worker, range(100)))
    good = sum(results)
    print(f"     # 300 scrapes by 100 concurrent clients in {time.monotonic() - start:.1f} s", flush=True)
    check("concurrent: all 300 scrapes from 100 concurrent clients succeeded", good == 300, f"{good}/300")


def case_slow():
    held = []
    stop = threading.Event()

    def trickle(payload):
        try:
            s = connect(60)
            held.append(s)
            for byte in payload:
                if stop.is_set():
                    return
                s.send(bytes([byte]))
                time.sleep(0.5)
        except OSError:
            pass

    # 2 silent connections, 2 trickling a request byte by byte, 1 announcing a body it never
    # sends, 1 requesting /metrics and never reading: 6 of the 8 workers at most.
    for _ in range(2):
        try:
            held.append(connect(60))
        except OSError:
            pass
    trickles = [threading.Thread(target=trickle, args=(b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"z" * 100,), daemon=True)
                for _ in range(2)]
    for thread in trickles:
        thread.start()
    try:
        s = connect(60)
        s.send(b"POST /-/reload HTTP/1.1\r\nContent-Length: 1000\r\n\r\nab")
        held.append(s)
        s = connect(60)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.send(b"GET /metrics HTTP/1.1\r\n\r\n")
        held.append(s)
    except OSError:
        pass
    time.sleep(1)
    good = 0
    start = time.monotonic()
    for _ in range(10):
        if scrape_ok(timeout=60.0):
            good += 1
        time.sleep(0.3)
    elapsed = time.monotonic() - start
    print(f"     # {len(held)} slow connections held; 10 scrapes took {elapsed:.1f} s", flush=True)
    check("slow: 10 of 10 scrapes succeed while slow clients hold connections", good == 10, f"{good}/10")
    stop.set()
    for s in held:
        try:
            s.close()
        except OSError:
            pass
    check("slow: scrape works after the slow clients leave", scrape_ok())


CASES = {"malformed": case_malformed, "oversized": case_oversized, "flood": case_flood,
         "concurrent": case_concurrent, "slow": case_slow}

if __name__ == "__main__":
    CASES[sys.argv[2]]()
    sys.exit(1 if failures else 0)
