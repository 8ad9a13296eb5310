#!/usr/bin/env python3
"""Token benchmark: API-token introspection and client_credentials grants, on SQLite and
PostgreSQL, beside a bare actix-web hello-world (the ceiling, measured before and after, since
the machine drifts) and oidc-provider (the peer: its introspection and client_credentials with
its default in-memory store), all in the same run.

Run from the repository root after `cargo build --release -p idp -p hello` and
`npm ci --prefix tests/peers/oidc`:
    python3 bench/tokens.py [--seconds 8] [--connections 64] [--postgres postgres://postgres@127.0.0.1:5432/test]
Needs wrk (Debian package `wrk`). Results go to stdout as a Markdown table.
"""
import argparse, base64, json, os, re, shutil, socket, subprocess, tempfile, time, urllib.parse, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDP = os.path.join(ROOT, "target/release/idp")
HELLO = os.path.join(ROOT, "target/release/hello")
PEER = os.path.join(ROOT, "tests/peers/oidc/bench.mjs")
SECRET = "bench-secret-0123456789abcdef-0123456789"


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def wait_ok(url, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except urllib.error.HTTPError:
            return True
        except Exception:
            time.sleep(0.05)
    return False


def post(url, form, client="bench"):
    data = urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(url, data=data)
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{client}:{SECRET}".encode()).decode())
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def wrk_post(url, form, seconds, connections, tmp):
    """wrk with a POST body and Basic auth; returns (req/s, p99 ms, non-2xx count)."""
    body = urllib.parse.urlencode(form)
    auth = base64.b64encode(f"bench:{SECRET}".encode()).decode()
    script = os.path.join(tmp, "post.lua")
    with open(script, "w") as f:
        f.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                f'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
                f'wrk.headers["Authorization"] = "Basic {auth}"\n')
    return wrk(url, seconds, connections, ["-s", script])


def wrk(url, seconds, connections, extra=()):
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", *extra, url],
                         capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, float(p99.group(1)) * scale, int(bad.group(1)) if bad else 0


def idp_env(tmp, port, db_url):
    config = os.path.join(tmp, "idp.toml")
    with open(config, "w") as f:
        f.write('[[clients]]\nclient_id = "bench"\nclient_secret_env = "BENCH_SECRET"\n'
                'redirect_uris = ["https://app.example.com/cb"]\nscopes = ["openid", "api"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update({"IDP_CONFIG": config, "BENCH_SECRET": SECRET, "IDP_BIND": f"127.0.0.1:{port}",
                "IDP_PUBLIC_URL": f"http://127.0.0.1:{port}", "IDP_LOG_LEVEL": "warn"})
    if db_url:
        env["IDP_DATABASE_URL"] = db_url
    return env


def cli(tmp, env, *args):
    return subprocess.run([IDP, *args], cwd=tmp, env=env, check=True, capture_output=True, text=True).stdout.strip()


def fresh_postgres(base):
    name = f"idp_bench_{os.getpid()}_{int(time.time())}"
    subprocess.run(["psql", base, "-qc", f"CREATE DATABASE {name}"], check=True)
    return base.rsplit("/", 1)[0] + "/" + name, name


def bench_idp(label, db_url, a):
    tmp = tempfile.mkdtemp()
    port = free_port()
    env = idp_env(tmp, port, db_url)
    cli(tmp, env, "org", "create", "--name", "Bench", "--slug", "bench")
    cli(tmp, env, "project", "create", "--org", "bench", "--name", "Api", "--slug", "api")
    token = cli(tmp, env, "token", "create", "--kind", "service", "--name", "bench", "--org", "bench",
                "--project", "api", "--scopes", "audit_read")
    p = subprocess.Popen([IDP, "serve"], cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_ok(f"{base}/healthz"):
            raise SystemExit("idp did not start")
        assert post(f"{base}/introspect", {"token": token})["active"] is True
        cc = {"grant_type": "client_credentials", "scope": "api"}
        assert "access_token" in post(f"{base}/token", cc)
        out = {
            "introspection": wrk_post(f"{base}/introspect", {"token": token}, a.seconds, a.connections, tmp),
            "client_credentials": wrk_post(f"{base}/token", cc, a.seconds, a.connections, tmp),
        }
    finally:
        p.terminate(); p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return label, out


def bench_peer(a):
    tmp = tempfile.mkdtemp()
    port = free_port()
    p = subprocess.Popen(["node", PEER], env={**os.environ, "PORT": str(port)},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_ok(f"{base}/.well-known/openid-configuration"):
            raise SystemExit("oidc-provider did not start")
        cc = {"grant_type": "client_credentials", "scope": "api"}
        token = post(f"{base}/token", cc)["access_token"]
        assert post(f"{base}/token/introspection", {"token": token})["active"] is True
        out = {
            "introspection": wrk_post(f"{base}/token/introspection", {"token": token}, a.seconds, a.connections, tmp),
            "client_credentials": wrk_post(f"{base}/token", cc, a.seconds, a.connections, tmp),
        }
    finally:
        p.terminate(); p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--postgres", default=os.environ.get("IDP_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"))
    a = ap.parse_args()
    for b in (IDP, HELLO):
        if not os.path.exists(b):
            raise SystemExit(f"{b} missing: cargo build --release -p idp -p hello")
    if not shutil.which("wrk"):
        raise SystemExit("wrk missing: apt-get install wrk")

    hport = free_port()
    h = subprocess.Popen([HELLO, f"127.0.0.1:{hport}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ok(f"http://127.0.0.1:{hport}/")
    hello_before = wrk(f"http://127.0.0.1:{hport}/", a.seconds, a.connections)
    peer = bench_peer(a)
    pg_url, pg_name = fresh_postgres(a.postgres)
    try:
        runs = [bench_idp("SQLite", None, a), bench_idp("PostgreSQL", pg_url, a)]
    finally:
        subprocess.run(["psql", a.postgres, "-qc", f"DROP DATABASE IF EXISTS {pg_name}"])
    hello_after = wrk(f"http://127.0.0.1:{hport}/", a.seconds, a.connections)
    h.terminate(); h.wait()

    hello = (hello_before[0] + hello_after[0]) / 2
    print(f"wrk -t2 -c{a.connections} -d{a.seconds}s on this machine; hello-world before {hello_before[0]:,.0f}, "
          f"after {hello_after[0]:,.0f} req/s (mean {hello:,.0f})\n")
    print("| measure | req/s | p99 | non-2xx | / hello-world | / oidc-provider |")
    print("|---|---|---|---|---|---|")
    for what in ("introspection", "client_credentials"):
        rps, p99, bad = peer[what]
        print(f"| oidc-provider {what} | {rps:,.0f} | {p99:.2f} ms | {bad} | {rps / hello:.2f} | 1.00 |")
        for label, out in runs:
            rps2, p99b, bad2 = out[what]
            print(f"| idp {what}, {label} | {rps2:,.0f} | {p99b:.2f} ms | {bad2} | {rps2 / hello:.2f} | {rps2 / rps:.1f} |")


if __name__ == "__main__":
    main()
