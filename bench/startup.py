"""Process start to first successful report (201/200), with the example inventory."""
import json, os, subprocess, sys, tempfile, time, urllib.request
exe, port = sys.argv[1], sys.argv[2]
runs = []
for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 10):
    d = tempfile.mkdtemp()
    env = dict(os.environ, FAILOVER_NOTIFY_DATA=d, RUST_LOG="warn", AWS_EC2_METADATA_DISABLED="true")
    t0 = time.perf_counter()
    p = subprocess.Popen([exe, "serve", "--listen", f"127.0.0.1:{port}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=b'{"hostname":"db1"}', headers={"x-api-key": "secret"})
            urllib.request.urlopen(req, timeout=1).read()
            break
        except Exception:
            time.sleep(0.001)
    runs.append((time.perf_counter() - t0) * 1000)
    p.terminate(); p.wait()
runs.sort()
print(f"median {runs[len(runs)//2]:.1f} ms, min {runs[0]:.1f} ms, max {runs[-1]:.1f} ms over {len(runs)} runs")
