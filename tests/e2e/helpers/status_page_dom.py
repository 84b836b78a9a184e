#!/usr/bin/env python3
"""Checks the status page as a browser rendered it (Chromium's --dump-dom output) against
what a test expects. Used by tests/e2e/status_page_test.sh.

  status_page_dom.py DOM_FILE SPEC_JSON

SPEC_JSON: {"url": "http://127.0.0.1:PORT/", "name": "pidfd_exporter", "version": "0.1.0",
            "telemetry_path": "/metrics",
            "sets": [{"name_hex": "...", "watched": 1, "zombies": 1}],
            "zombies": [{"set_hex": "...", "pid": 1, "comm_hex": "...", "parent_pid": 1,
                         "parent_comm_hex": "..."}],
            "forbidden_tags": ["b", "i", "script"]}
Names are hex-encoded raw bytes as the kernel has them; the cell text must equal them as
the page promises to show them: valid UTF-8 as is, each invalid or control byte as U+FFFD.
Prints one "ok   - ..." / "FAIL - ..." line per check and a final "N passed, M failed".
Only the standard library (html.parser), so any python3 runs it.
"""
import json
import sys
from html.parser import HTMLParser
from urllib.parse import urljoin, urlparse

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()


class TreeBuilder(HTMLParser):
    """A DOM tree from serialized HTML (Chromium's serialization closes every element)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", [], None)
        self.current = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, attrs, self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def valid_utf8_length(data, i):
    """Length of the valid UTF-8 sequence at data[i:], 0 when invalid (RFC 3629)."""
    lead = data[i]
    if lead < 0x80:
        return 1
    for length, low, high in ((2, 0xC2, 0xDF), (3, 0xE0, 0xEF), (4, 0xF0, 0xF4)):
        if low <= lead <= high:
            break
    else:
        return 0
    try:
        data[i:i + length].decode("utf-8", "strict")
    except UnicodeDecodeError:
        return 0
    return length if i + length <= len(data) else 0


def displayed(raw):
    """How the page shows raw /proc bytes: invalid and control bytes become U+FFFD."""
    out, i = [], 0
    while i < len(raw):
        n = valid_utf8_length(raw, i)
        if n == 0 or (n == 1 and (raw[i] < 0x20 or raw[i] == 0x7F)):
            out.append("\ufffd")
            i += 1
        else:
            out.append(raw[i:i + n].decode("utf-8"))
            i += n
    return "".join(out)


def main():
    dom_path, spec_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    with open(dom_path, "rb") as f:
        html = f.read().decode("utf-8")
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    root = builder.root
    nodes = list(root.iter())
    counts = {"passed": 0, "failed": 0}

    def check(name, ok, detail=""):
        counts["passed" if ok else "failed"] += 1
        print(("ok   - " if ok else "FAIL - ") + name + ("" if ok or not detail else f"\n     # {detail}"))

    def cells(row):
        return [c for c in row.children if isinstance(c, Node) and c.tag in ("td", "th")]

    def tables_with_header(header):
        result = []
        for table in (n for n in nodes if n.tag == "table"):
            rows = [n for n in table.iter() if n.tag == "tr"]
            if rows and [c.text().strip() for c in cells(rows[0])][:len(header)] == header:
                result.append([[c.text() for c in cells(r)] for r in rows[1:]])
        return result

    body = next((n for n in nodes if n.tag == "body"), None)
    check("the DOM has a body", body is not None)
    if body is None:
        print(f"{counts['passed']} passed, {counts['failed']} failed")
        return 1
    text = body.text()
    titles = [n.text() for n in nodes if n.tag == "title"]
    h1 = [n.text().strip() for n in nodes if n.tag == "h1"]
    check(f"title and h1 name the exporter ({spec['name']})",
          titles and spec["name"] in titles[0] and h1 == [spec["name"]], f"title={titles} h1={h1}")
    check(f"page text shows the version {spec['version']}", f"Version {spec['version']}" in text,
          "no 'Version ...' in the page text")
    want_path = spec.get("telemetry_path", "/metrics")
    links = [(n.attrs.get("href") or "", n.text().strip()) for n in nodes if n.tag == "a"]
    resolved = [(urlparse(urljoin(spec["url"], href)), label) for href, label in links]
    check(f"a link resolves to {want_path}",
          any(u.path == want_path and u.netloc == urlparse(spec["url"]).netloc for u, _ in resolved),
          f"links: {links}")
    present = sorted({n.tag for n in nodes})
    for tag in spec.get("forbidden_tags", []):
        check(f"no <{tag}> element in the DOM (hostile text was not parsed as markup)", tag not in present,
              f"elements present: {present}")

    set_tables = tables_with_header(["Set", "Watched", "Zombies"])
    check("one process-set table", len(set_tables) == 1, f"found {len(set_tables)}")
    set_rows = set_tables[0] if set_tables else []
    for want in spec.get("sets", []):
        name = displayed(bytes.fromhex(want["name_hex"]))
        rows = [r for r in set_rows if r and r[0] == name]
        check(f"set row for {name!r}", len(rows) == 1, f"rows: {set_rows}")
        if rows:
            got = (rows[0][1].strip(), rows[0][2].strip())
            check(f"set {name!r}: watched={want['watched']} zombies={want['zombies']}",
                  got == (str(want["watched"]), str(want["zombies"])), f"got watched, zombies = {got}")

    zombie_tables = tables_with_header(["Set", "PID", "Command", "Parent PID", "Parent command"])
    if spec.get("zombies"):
        check("one zombie table", len(zombie_tables) == 1, f"found {len(zombie_tables)}")
    zombie_rows = zombie_tables[0] if zombie_tables else []
    for want in spec.get("zombies", []):
        rows = [r for r in zombie_rows if len(r) >= 5 and r[1].strip() == str(want["pid"])]
        check(f"zombie row for PID {want['pid']}", len(rows) == 1, f"rows: {zombie_rows}")
        if not rows:
            continue
        row = rows[0]
        expected = {
            "set": displayed(bytes.fromhex(want["set_hex"])),
            "command": displayed(bytes.fromhex(want["comm_hex"])),
            "parent PID": str(want["parent_pid"]),
            "parent command": displayed(bytes.fromhex(want["parent_comm_hex"])),
        }
        got = {"set": row[0], "command": row[2], "parent PID": row[3].strip(), "parent command": row[4]}
        for key in expected:
            check(f"zombie {want['pid']}: {key} text is {expected[key]!r}", got[key] == expected[key],
                  f"got {got[key]!r}")

    print(f"{counts['passed']} passed, {counts['failed']} failed")
    return 0 if counts["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
