#!/usr/bin/env python3
"""
members_csv.py - move a brand's members in and out of tidepool as CSV.

  import:  python3 tools/members_csv.py import FILE.csv --url http://127.0.0.1:8080 --tenant leaf --key KEY
  export:  python3 tools/members_csv.py export [--segment NAME] --url ... --tenant ... --key ... > out.csv

Import reads FILE's header line for the columns (identity channels mp_openid,
oa_openid, unionid, wecom_external, phone, card; nickname, gender, birthday,
city, store, guide, referrer; the brand's custom fields; joined_at; tags as
a|b|c), opens an import and streams the lines in chunks (500 lines, or
--chunk-lines up to 5,000 when the brand's plugin_limits give members the
instructions), each applied by the host in its own transaction. Run it
again after a failure: chunks the
host has applied are answered from its record, and lines already imported find
the members they made. It prints the totals and every refused line.

Export writes the members (of a segment) as CSV on stdout, phones masked.
The admin key is the brand's; keep it out of shell history (--key-file).
Only the Python standard library is used.
"""
import argparse
import concurrent.futures
import csv
import io
import json
import sys
import urllib.error
import urllib.request

CHUNK_LINES = 500   # fits the default instruction budget; --chunk-lines up to 5000


def call(args, method, path, body=None):
    url = "%s/admin/%s%s" % (args.url.rstrip("/"), args.tenant, path)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("X-Api-Key", args.key)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        text = e.read().decode("utf-8", "replace")
        sys.exit("%s %s: %d %s" % (method, path, e.code, text))


def chunks(reader, size):
    """(first_line, csv text) per chunk of size lines; line 1 is the header."""
    buf, out, first, line = io.StringIO(), None, 2, 1
    writer = csv.writer(buf, lineterminator="\n")
    n = 0
    for row in reader:
        line = reader.line_num
        writer.writerow(row)
        n += 1
        if n == size:
            yield first, buf.getvalue()
            buf.seek(0)
            buf.truncate()
            n, first = 0, line + 1
    if n:
        yield first, buf.getvalue()


def add(totals, r):
    for k in totals:
        totals[k] += r[k]


def do_import(args):
    with open(args.file, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        columns = next(reader)
        imp = call(args, "POST", "/members/imports", {"columns": columns, "note": args.file[-200:]})
        totals = {"lines": 0, "created": 0, "updated": 0, "failed": 0}
        # one chunk in flight at a time (the host applies them in order); the
        # next is read while the host works on the current one
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            pending = None
            for seq, (first, text) in enumerate(chunks(reader, args.chunk_lines), 1):
                body = {"seq": seq, "first_line": first, "csv": text}
                if pending:
                    add(totals, pending.result())
                pending = pool.submit(call, args, "POST", "/members/imports/%d/chunks" % imp["id"], body)
            if pending:
                add(totals, pending.result())
    after = 0
    while True:
        r = call(args, "GET", "/members/imports/%d?after_line=%d" % (imp["id"], after))
        for e in r["errors"]:
            print("line %d: %s %s" % (e["line"], e["column"], e["message"]), file=sys.stderr)
        if len(r["errors"]) < 1000:
            break
        after = r["errors"][-1]["line"]
    print(json.dumps(dict(totals, import_id=imp["id"])))
    return 1 if totals["failed"] else 0


def do_export(args):
    after = None
    while True:
        q = "?limit=5000" + ("&segment=" + args.segment if args.segment else "")
        if after:
            q += "&after=%d" % after
        page = call(args, "GET", "/members/export" + q)
        sys.stdout.write(page["csv"])
        after = page.get("next_after")
        if not after:
            return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["import", "export"])
    p.add_argument("file", nargs="?")
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--tenant", required=True)
    p.add_argument("--key")
    p.add_argument("--key-file")
    p.add_argument("--segment")
    p.add_argument("--chunk-lines", type=int, default=CHUNK_LINES)
    args = p.parse_args()
    if args.key_file:
        with open(args.key_file) as f:
            args.key = f.read().strip()
    if not args.key:
        p.error("--key or --key-file is required")
    if not 1 <= args.chunk_lines <= 5000:
        p.error("--chunk-lines must be 1-5000")
    if args.command == "import":
        if not args.file:
            p.error("import needs a FILE")
        return do_import(args)
    return do_export(args)


if __name__ == "__main__":
    sys.exit(main())
