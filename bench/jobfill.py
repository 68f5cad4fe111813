"""Filling our job table with finished jobs, for the GetStatus scaling test.

`fill_finished_jobs(db_url, total)` is the one entry point run.py uses: it
must leave at least `total` finished jobs in the server's job table, with
the jobs already there untouched. The implementation below needs nothing
from hpc_wps: it finds the job table in the SQLite file by its columns and
clones an existing finished row with fresh identifiers, in one transaction.
It can be replaced by a call to a filler that hpc_wps provides.
"""

import re
import sqlite3
import uuid

_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_FINISHED = ("succeeded", "success", "failed", "dismissed", "finished", "done")


def _sqlite_path(db_url):
    if not db_url.startswith("sqlite:///"):
        raise ValueError(f"only sqlite:/// job databases are handled here: {db_url}")
    return db_url[len("sqlite:///") :]


def _columns(conn, table):
    # cid, name, type, notnull, default, pk
    return conn.execute(f'PRAGMA table_info("{table}")').fetchall()


def _unique_columns(conn, table):
    cols = set()
    for idx in conn.execute(f'PRAGMA index_list("{table}")').fetchall():
        if idx[2]:  # unique
            for info in conn.execute(f'PRAGMA index_info("{idx[1]}")').fetchall():
                cols.add(info[2])
    return cols


def find_job_table(conn):
    """The table that looks like the job table: has a status column and a
    primary key; a name with 'job' in it wins."""
    best = None
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        if name.startswith("sqlite_") or name == "alembic_version":
            continue
        cols = _columns(conn, name)
        names = [c[1].lower() for c in cols]
        if not any("status" in n or n == "state" for n in names) or not any(c[5] for c in cols):
            continue
        score = (2 if "job" in name.lower() else 0) + (1 if any("id" in n for n in names) else 0)
        if best is None or score > best[0]:
            best = (score, name)
    if best is None:
        raise RuntimeError("no job-like table found")
    return best[1]


def _finished_template(conn, table):
    cols = _columns(conn, table)
    status_cols = [c[1] for c in cols if "status" in c[1].lower() or c[1].lower() == "state"]
    rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
    names = [c[1] for c in cols]
    for row in rows:
        for sc in status_cols:
            val = str(row[names.index(sc)]).lower()
            if any(word in val for word in _FINISHED):
                return row
    raise RuntimeError(f"no finished job in {table} to clone (status columns: {status_cols})")


def _fresh(value, counter):
    if isinstance(value, str):
        if _UUID.match(value):
            return str(uuid.uuid4())
        if _HEX32.match(value):
            return uuid.uuid4().hex
        return f"{value}-fill{counter}"
    if isinstance(value, int):
        return None  # let SQLite pick (INTEGER PRIMARY KEY); see below
    raise RuntimeError(f"do not know how to make a fresh value from {value!r}")


def count_rows(db_url, table=None):
    with sqlite3.connect(_sqlite_path(db_url), timeout=60) as conn:
        table = table or find_job_table(conn)
        return conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]


def fill_finished_jobs(db_url, total, batch=10000):
    """Adds clones of a finished job until the job table holds `total` rows.
    Returns (table name, rows added)."""
    conn = sqlite3.connect(_sqlite_path(db_url), timeout=60)
    try:
        table = find_job_table(conn)
        cols = _columns(conn, table)
        names = [c[1] for c in cols]
        key_cols = {c[1] for c in cols if c[5]} | _unique_columns(conn, table)
        have = conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
        need = total - have
        if need <= 0:
            return table, 0
        template = _finished_template(conn, table)
        # Identifier-like text of the template (its keys) that other columns
        # may repeat (e.g. a status location naming the job id).
        old_ids = [str(template[names.index(k)]) for k in key_cols if isinstance(template[names.index(k)], str)]
        int_pk = [c[1] for c in cols if c[5] and (c[2] or "").upper().startswith("INT")]
        insert_cols = [n for n in names if n not in int_pk]
        sql = 'INSERT INTO "{}" ({}) VALUES ({})'.format(
            table, ", ".join(f'"{n}"' for n in insert_cols), ", ".join("?" * len(insert_cols))
        )
        added = 0
        with conn:
            while added < need:
                rows = []
                for i in range(added, min(need, added + batch)):
                    row = dict(zip(names, template, strict=True))
                    repl = {}
                    for k in key_cols:
                        if k in int_pk:
                            continue
                        new = _fresh(row[k], i)
                        repl[str(row[k])] = str(new)
                        row[k] = new
                    for n in insert_cols:
                        v = row[n]
                        if n not in key_cols and isinstance(v, str):
                            for old in old_ids:
                                if old and old in v:
                                    v = v.replace(old, repl.get(old, old))
                            row[n] = v
                    rows.append([row[n] for n in insert_cols])
                conn.executemany(sql, rows)
                added += len(rows)
        # 100,000 rows in one transaction leave a WAL of about 100 MB that every read then searches;
        # a table that grew job by job has had it checkpointed all along. Measure that table.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return table, added
    finally:
        conn.close()
