#!/usr/bin/env python3
"""Foundation benchmark: cold start to ready, idle RSS, and /healthz requests/s beside a bare
actix-web hello-world measured in the same run (before and after, since the machine drifts).

Run from the repository root after `cargo build --release -p idp -p hello`:
    python3 bench/foundation.py [--seconds 10] [--connections 64]
Needs wrk (Debian package `wrk`). Results go to stdout as a Markdown table.
"""
import argparse, os, re, shutil, socket, statistics, subprocess, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDP = os.path.join(ROOT, "target/release/idp")
HELLO = os.path.join(ROOT, "target/release/hello")


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def wait_ok(url, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return True
        except Exception:
            time.sleep(0.001)
    return False


def start_idp(data_dir, port, extra_env=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update({"IDP_BIND": f"127.0.0.1:{port}", "IDP_PUBLIC_URL": f"http://127.0.0.1:{port}", "IDP_LOG_LEVEL": "warn"})
    env.update(extra_env or {})
    t0 = time.monotonic()
    p = subprocess.Popen([IDP, "serve"], cwd=data_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_ok(f"http://127.0.0.1:{port}/healthz"):
        p.kill(); raise SystemExit("idp did not start")
    return p, (time.monotonic() - t0) * 1000


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def wrk(url, seconds, connections):
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url], capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    return rps, float(p99.group(1)) * scale


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--starts", type=int, default=10)
    a = ap.parse_args()
    for b in (IDP, HELLO):
        if not os.path.exists(b):
            raise SystemExit(f"{b} missing: cargo build --release -p idp -p hello")
    if not shutil.which("wrk"):
        raise SystemExit("wrk missing: apt-get install wrk")

    tmp = tempfile.mkdtemp()
    # First start: creates the database, the master key and the signing keys.
    port = free_port()
    p, first_ms = start_idp(tmp, port)
    p.terminate(); p.wait()
    starts = []
    for _ in range(a.starts):
        port = free_port()
        p, ms = start_idp(tmp, port)
        starts.append(ms)
        p.terminate(); p.wait()

    port = free_port()
    p, _ = start_idp(tmp, port)
    time.sleep(2)
    idle = rss_kb(p.pid)

    hport = free_port()
    h = subprocess.Popen([HELLO, f"127.0.0.1:{hport}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ok(f"http://127.0.0.1:{hport}/")
    hello_before = wrk(f"http://127.0.0.1:{hport}/", a.seconds, a.connections)
    idp_healthz = wrk(f"http://127.0.0.1:{port}/healthz", a.seconds, a.connections)
    hello_after = wrk(f"http://127.0.0.1:{hport}/", a.seconds, a.connections)
    loaded = rss_kb(p.pid)
    h.terminate(); p.terminate(); h.wait(); p.wait()
    shutil.rmtree(tmp, ignore_errors=True)

    hello_mean = (hello_before[0] + hello_after[0]) / 2
    print("| measure | value |")
    print("|---|---|")
    print(f"| first start to /healthz (creates database, master key, signing keys) | {first_ms:.0f} ms |")
    print(f"| start to /healthz, median of {a.starts} | {statistics.median(starts):.0f} ms (min {min(starts):.0f}, max {max(starts):.0f}) |")
    print(f"| idle RSS after start | {idle / 1024:.1f} MiB |")
    print(f"| RSS after the load | {loaded / 1024:.1f} MiB |")
    print(f"| hello-world req/s (before, after) | {hello_before[0]:.0f}, {hello_after[0]:.0f} |")
    print(f"| idp /healthz req/s | {idp_healthz[0]:.0f} (p99 {idp_healthz[1]:.2f} ms) |")
    print(f"| idp /healthz / hello-world (mean of before and after) | {idp_healthz[0] / hello_mean:.2f} |")


if __name__ == "__main__":
    main()
