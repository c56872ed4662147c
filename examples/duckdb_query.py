"""Run examples/duckdb_labels.sql (or _sparse.sql) against a mixbake OUT directory and print each result.

    python examples/duckdb_query.py OUT [--sql FILE] [--max-rows N]

Sets the DuckDB variable ``out`` to OUT, then runs the file's statements in order (a statement ends
with ';' at the end of a line; the comment block just before a query is printed as its title).
Without ``--sql`` the file follows the soft label's form in ``OUT/labels.parquet``:
``duckdb_labels_sparse.sql`` when it has ``soft_index``/``soft_value`` (more than 1000 classes, or
``--soft-label sparse|both``), ``duckdb_labels.sql`` for a dense ``soft_label``. A result longer than
``--max-rows`` (a class table of a 21k-class bake) is cut, saying how many rows it had.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

import duckdb

HERE = os.path.dirname(os.path.abspath(__file__))
SQL = {"dense": os.path.join(HERE, "duckdb_labels.sql"), "sparse": os.path.join(HERE, "duckdb_labels_sparse.sql")}


def soft_form(out: str, con=None) -> str:
    """'sparse' when OUT/labels.parquet has soft_index (also in a --soft-label both bake), else 'dense'."""
    con = con or duckdb.connect()
    names = [row[0] for row in con.execute("DESCRIBE FROM read_parquet(?)",
                                           [os.path.join(out, "labels.parquet")]).fetchall()]
    return "sparse" if "soft_index" in names else "dense"


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


def run(out: str, sql_path=None, con=None):
    """Execute every statement of ``sql_path`` (default: the file for OUT's soft-label form);
    returns [(title, column names, rows)] for the ones that return rows."""
    con = con or duckdb.connect()
    sql_path = sql_path or SQL[soft_form(out, con)]
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
    parser.add_argument("--sql", default=None, help="default: duckdb_labels.sql or _sparse.sql, by OUT's form")
    parser.add_argument("--max-rows", type=int, default=30, help="rows printed per result")
    args = parser.parse_args(argv)
    for title, columns, rows in run(args.out, args.sql):
        print(f"-- {title}")
        shown = rows[:args.max_rows]
        widths = [max([len(str(c))] + [len(str(r[i])) for r in shown]) for i, c in enumerate(columns)]
        print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths)))
        for row in shown:
            print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
        if len(rows) > len(shown):
            print(f"... {len(rows) - len(shown)} more rows ({len(rows)} in all)")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
