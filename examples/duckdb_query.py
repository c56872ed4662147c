"""Run examples/duckdb_labels.sql against a mixbake OUT directory and print each result.

    python examples/duckdb_query.py OUT [--sql FILE]

Sets the DuckDB variable ``out`` to OUT, then runs the file's statements in order (a statement ends
with ';' at the end of a line; the comment block just before a query is printed as its title).
"""
from __future__ import annotations

import argparse
import os
import re
import sys

import duckdb

HERE = os.path.dirname(os.path.abspath(__file__))


def statements(sql: str):
    """(title, statement) pairs: the file split at ';' line ends; title = the leading '--' lines."""
    for chunk in re.split(r";[ \t]*$", sql, flags=re.M):
        lines = chunk.strip().splitlines()
        comments = []
        while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
            line = lines.pop(0).strip()
            comments = comments + [line[2:].strip()] if line else []  # a blank line ends a comment block
        if lines:
            yield " ".join(c for c in comments if c), "\n".join(lines)


def run(out: str, sql_path: str, con=None):
    """Execute every statement; returns [(title, column names, rows)] for the ones that return rows."""
    con = con or duckdb.connect()
    con.execute("SET VARIABLE out = ?", [os.path.abspath(out)])
    with open(sql_path, encoding="utf-8") as f:
        sql = f.read()
    results = []
    for title, statement in statements(sql):
        if re.match(r"(SELECT|WITH|FROM)\b", statement, flags=re.I):
            cursor = con.execute(statement)
            results.append((title, [d[0] for d in cursor.description], cursor.fetchall()))
        else:
            con.execute(statement)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--sql", default=os.path.join(HERE, "duckdb_labels.sql"))
    args = parser.parse_args(argv)
    for title, columns, rows in run(args.out, args.sql):
        print(f"-- {title}")
        widths = [max([len(str(c))] + [len(str(r[i])) for r in rows]) for i, c in enumerate(columns)]
        print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths)))
        for row in rows:
            print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
