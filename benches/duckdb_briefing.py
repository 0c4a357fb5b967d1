#!/usr/bin/env python3
"""The DuckDB reference for `cargo bench --bench briefing`.

Runs a report SQL file over jiancha's history Parquet files with DuckDB,
defining the same views as jiancha's own SQL session, times it, and checks
that DuckDB's rows equal DataFusion's (the JSON the benchmark wrote).

Prints `duckdb_best_seconds S` and `duckdb_median_seconds S`; exits non-zero
when the two engines disagree.
"""
import argparse
import glob as globmod
import json
import math
import os
import time

import duckdb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--month", required=True)
    ap.add_argument("--region", default="")
    ap.add_argument("--views", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--expect", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()

    con = duckdb.connect()
    con.execute(f"SET threads = {a.threads}")
    con.execute("SET TimeZone = 'Asia/Shanghai'")
    d = a.data
    stored = [
        ("event_log", f"{d}/events/*/*.parquet", True),
        ("alert_records", f"{d}/alert_records/*/*.parquet", True),
        ("case_versions", f"{d}/case_versions/*/*.parquet", True),
        ("rejected_events", f"{d}/rejected_events/*.parquet", False),
        ("notice_versions", f"{d}/notice_versions/*/*.parquet", True),
        ("items", f"{d}/reference/items.parquet", False),
        ("regions", f"{d}/reference/regions.parquet", False),
        ("region_tree", f"{d}/reference/region_tree.parquet", False),
        ("departments", f"{d}/reference/departments.parquet", False),
        ("deductions", f"{d}/reference/deductions.parquet", False),
    ]
    for name, pattern, hive in stored:
        if not globmod.glob(pattern) and name == "rejected_events":
            # No event was found not in effect: an empty table of its columns.
            con.execute("CREATE TABLE rejected_events (run UBIGINT, origin UBIGINT)")
            continue
        if not globmod.glob(pattern) and name == "notice_versions":
            # No supervision notice in the data: an empty table of its columns.
            con.execute(
                "CREATE TABLE notice_versions (notice_id VARCHAR, case_id VARCHAR, region VARCHAR,"
                " department VARCHAR, \"window\" VARCHAR, issued_at TIMESTAMPTZ, issued_date DATE,"
                " deadline_days INTEGER, due_date DATE, answered_at TIMESTAMPTZ, answered_date DATE,"
                " overdue BOOLEAN, version UBIGINT, month VARCHAR)"
            )
            continue
        # union_by_name: parts written before a column was added lack it.
        opts = ", hive_partitioning = true, hive_types = {'month': VARCHAR}, union_by_name = true" if hive else ""
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{pattern}'{opts})")
    for view in open(a.views).read().split(";\n"):
        con.execute(view)

    sql = open(a.report).read()
    params = {"month": a.month, "region": a.region}
    times = []
    for _ in range(a.runs):
        t = time.perf_counter()
        cur = con.execute(sql, params)
        rows = cur.fetchall()
        times.append(time.perf_counter() - t)
    cols = [c[0] for c in cur.description]
    times.sort()
    print(f"DuckDB {duckdb.__version__}: {len(rows)} rows, best {times[0]:.3f} s, "
          f"median {times[len(times) // 2]:.3f} s over {a.runs} runs, {a.threads} threads")
    print(f"duckdb_best_seconds {times[0]:.6f}")
    print(f"duckdb_median_seconds {times[len(times) // 2]:.6f}")

    expect = json.load(open(a.expect))
    got = [dict(zip(cols, r)) for r in rows]
    problems = compare(expect, got)
    if problems:
        for p in problems[:20]:
            print("MISMATCH", p)
        raise SystemExit(f"DuckDB and DataFusion disagree in {len(problems)} places")
    print(f"DuckDB and DataFusion agree on all {len(got)} rows")


def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return str(a) == str(b)


def compare(expect, got):
    out = []
    if len(expect) != len(got):
        out.append(f"{len(expect)} rows from DataFusion, {len(got)} from DuckDB")
    key = lambda r: r["department"]
    e = {key(r): r for r in expect}
    for g in got:
        r = e.get(key(g))
        if r is None:
            out.append(f"department {key(g)} only in DuckDB")
            continue
        for c, v in g.items():
            if not same(r.get(c), v):
                out.append(f"{key(g)}.{c}: DataFusion {r.get(c)!r}, DuckDB {v!r}")
    return out


if __name__ == "__main__":
    main()
