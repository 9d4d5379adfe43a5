"""walpages.py DB COUNTS - the b-tree of every page walpages.c saw written to
DB's WAL: frames per commit by table or index, most first (tests/bench, WALPAGES=1).
Pages are named by SQLite's dbstat on DB as it is after the run; a page freed
since is counted as "(freed or moved)"."""
import collections
import sqlite3
import sys

db_path, counts_path = sys.argv[1], sys.argv[2]
db = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True)
owner = {page: name for name, page in db.execute("SELECT name, pageno FROM dbstat")}
by_tree, frames, commits = collections.Counter(), 0, 1
for line in open(counts_path):
    if line.startswith("#"):
        _, _, frames, _, commits = line.split()
        frames, commits = int(frames), max(int(commits), 1)
        continue
    page, n = map(int, line.split())
    by_tree[owner.get(page, "(freed or moved)")] += n
print("%d frames in %d commits: %.1f pages a commit" % (frames, commits, frames / commits))
print("%-40s %9s %8s %7s" % ("b-tree", "frames", "share", "/commit"))
for name, n in by_tree.most_common():
    if n * 1000 < frames:
        break
    print("%-40s %9d %7.1f%% %7.2f" % (name, n, 100.0 * n / frames, n / commits))
