#!/usr/bin/env python3
"""Backup benchmark: 100k users on SQLite and on PostgreSQL; times `idp backup create`,
`idp backup verify` and `idp backup restore` into a fresh database of the same backend, and
reports the file size. Usage: python3 bench/backup.py [path/to/idp] (default target/release/idp,
else target/debug/idp). Needs psql and PostgreSQL at postgres://postgres@127.0.0.1:5432."""
import os, sqlite3, subprocess, sys, tempfile, time, uuid

N = 100_000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
idp = sys.argv[1] if len(sys.argv) > 1 else next(
    p for p in (f"{ROOT}/target/release/idp", f"{ROOT}/target/debug/idp") if os.path.exists(p))


def run(cwd, env, *args):
    e = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    e.update(env)
    t = time.monotonic()
    out = subprocess.run([idp, *args], cwd=cwd, env=e, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"idp {' '.join(args)} failed: {out.stderr.strip().splitlines()[-1:]}")
    return time.monotonic() - t


def pg_db():
    name = f"bench_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", f"CREATE DATABASE {name}"], check=True)
    return name, f"postgres://postgres@127.0.0.1:5432/{name}"


def insert_sqlite(path):
    c = sqlite3.connect(path)
    c.executemany("INSERT INTO users VALUES (?, ?, 1, ?, 0, '2026-12-02 00:00:00', '2026-12-02 00:00:00')",
                  ((str(uuid.uuid4()), f"user{i}@example.com", f"User {i}") for i in range(N)))
    c.commit()
    c.close()


def insert_pg(name):
    sql = (f"INSERT INTO users SELECT gen_random_uuid()::text, 'user' || i || '@example.com', true, 'User ' || i, false, "
           f"'2026-12-02', '2026-12-02' FROM generate_series(1, {N}) i")
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", name, "-qc", sql], check=True)


rows = []
for backend in ("sqlite", "postgres"):
    d = tempfile.mkdtemp(prefix="idp-bench-")
    if backend == "sqlite":
        env = {}
    else:
        name, url = pg_db()
        env = {"IDP_DATABASE_URL": url}
    run(d, env, "org", "create", "--name", "Bench")
    insert_sqlite(f"{d}/idp-data/idp.sqlite") if backend == "sqlite" else insert_pg(name)
    f = f"{d}/b.idpbak"
    t_create = run(d, env, "backup", "create", "--output", f)
    size = os.path.getsize(f)
    t_verify = run(d, env, "backup", "verify", f)
    target = {"IDP_DATABASE_URL": f"sqlite://{d}/restored.sqlite"} if backend == "sqlite" else {"IDP_DATABASE_URL": pg_db()[1]}
    t_restore = run(d, {**env, **target}, "backup", "restore", f)
    rows.append((backend, t_create, t_verify, t_restore, size))

print(f"binary: {idp}")
print("| backend | users | create | verify (restore rehearsal into scratch SQLite) | restore | file size |")
print("|---|---|---|---|---|---|")
for b, c, v, r, s in rows:
    print(f"| {b} | {N:,} | {c:.2f} s | {v:.2f} s | {r:.2f} s | {s / 1e6:.1f} MB |")
