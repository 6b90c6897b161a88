"""The Rust function against the original Python handler, on one moto server (SNS, DynamoDB):
cold start (process start -> classified -> stored -> published -> answered, and -> done: the function asks for the next event), warm invocation
time, and peak RSS (ru_maxrss of the process). Run with the test venv's Python:

    .venv/bin/python bench/lambda_vs_original.py target/lambda/failover-notify/bootstrap [OTHER_BUILD ...] [RUNS]

With more than one build, their cold starts are alternated with each other and with the
original's in the same run, so all see the same machine noise.

The Rust binary runs under a minimal Lambda Runtime API emulator (this file); the Python handler
is imported and called the way Lambda's Python runtime calls it. Each function process has a
DynamoDB table of its own, and each invocation in it reports a host of another cluster, so
each one is a new event and publishes."""
import json, os, queue, socket, statistics, subprocess, sys, tempfile, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

args = sys.argv[1:]
runs = int(args.pop()) if args and args[-1].isdigit() else 10
exes = [os.path.abspath(a) for a in args]
assert exes, "usage: lambda_vs_original.py BOOTSTRAP [OTHER_BOOTSTRAP ...] [RUNS]"
warm = 50
venv_bin = os.path.dirname(sys.executable)
here = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


moto_port = free_port()
moto_url = f"http://127.0.0.1:{moto_port}"
moto = subprocess.Popen([os.path.join(venv_bin, "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
aws_env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1",
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
try:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", moto_port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    kw = dict(endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    topic = boto3.client("sns", **kw).create_topic(Name="failovers")["TopicArn"]
    ddb = boto3.client("dynamodb", **kw)
    tables = [0]

    def new_table():
        """A fresh table for each function process. moto copies the whole table for every
        item of a transaction (`transact_write_items` in moto/dynamodb/models), so on one shared
        table each run would pay for the rows of all runs before it; DynamoDB's cost does not
        grow with the table."""
        tables[0] += 1
        name = f"failover-notify-{tables[0]}"
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                         AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "undelivered")],
                         GlobalSecondaryIndexes=[{"IndexName": "pending", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                                  "KeySchema": [{"AttributeName": "undelivered", "KeyType": "HASH"},
                                                                {"AttributeName": "sk", "KeyType": "RANGE"}]}])
        return name

    # Every function process has a table of its own, so a cluster's first report is a new event
    # in each; the inventory's size stays that of the earlier runs, whatever RUNS is.
    clusters = 130
    inv = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    inv.write('[[customers]]\nname = "acme"\n\n')
    for i in range(clusters):
        inv.write(f'[[clusters]]\nname = "c{i}"\ncustomer = "acme"\nnodes = ["c{i}-a", "c{i}-b"]\n\n')
    inv.write(f'[[channels]]\nname = "sns"\nkind = "sns"\ntopic_arn = "{topic}"\nendpoint_url = "{moto_url}"\n\n'
              '[[routes]]\nchannels = ["sns"]\n\n'
              '[[keys]]\nname = "nodes"\ncustomer = "acme"\n'
              'hash = "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"\n')
    inv.close()

    # --- A minimal Lambda Runtime API ---
    events, answers, nexts = queue.Queue(), {}, []
    answered = threading.Condition()

    class Runtime(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def client_gone(self):
            import select
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""

        def do_GET(self):
            with answered:
                nexts.append(time.perf_counter())
                answered.notify_all()
            # A killed function leaves its /next request behind; it must not take an event.
            while True:
                try:
                    rid, event = events.get(timeout=0.02)
                except queue.Empty:
                    if self.client_gone():
                        return
                    continue
                if self.client_gone():
                    events.put((rid, event))
                    return
                break
            body = json.dumps(event).encode()
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", rid)
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:f")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            rid = self.path.split("/")[4] if "/invocation/" in self.path else "init"
            data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            with answered:
                answers[rid] = (self.path, data)
                answered.notify_all()

    rt_port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", rt_port), Runtime)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    counter = [0]

    def invoke(host):
        counter[0] += 1
        rid = f"r{counter[0]}"
        event = {"version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
                 "headers": {"x-api-key": "secret", "content-type": "application/json"},
                 "requestContext": {"accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
                                    "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "curl"},
                                    "requestId": rid, "routeKey": "$default", "stage": "$default", "time": "", "timeEpoch": 0},
                 "body": json.dumps({"hostname": host}), "isBase64Encoded": False}
        events.put((rid, event))
        with answered:
            answered.wait_for(lambda: rid in answers, timeout=30)
            path, data = answers.pop(rid)
        status = json.loads(data).get("statusCode")
        assert path.endswith("/response") and status == 200, (path, data)

    def vm_hwm(pid):
        """Peak RSS of a live process in MB (VmHWM; ru_maxrss would count the forked parent)."""
        with open(f"/proc/{pid}/status") as f:
            return int(next(l for l in f if l.startswith("VmHWM")).split()[1]) / 1024

    def rust_env(table):
        return dict(aws_env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{rt_port}", AWS_LAMBDA_FUNCTION_NAME="f",
                    AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128", AWS_LAMBDA_FUNCTION_VERSION="1",
                    FAILOVER_NOTIFY_CONFIG=inv.name, FAILOVER_NOTIFY_TABLE=table,
                    FAILOVER_NOTIFY_DYNAMODB_ENDPOINT=moto_url, RUST_LOG="warn")

    def rust_process(exe, hosts):
        env = rust_env(new_table())
        t0 = time.perf_counter()
        p = subprocess.Popen([exe], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times = []
        for h in hosts:
            s = time.perf_counter()
            invoke(h)
            times.append((time.perf_counter() - s) * 1000)
        answered_at = time.perf_counter()
        total = (answered_at - t0) * 1000
        # The function is done with the invocation when it asks for the next event.
        with answered:
            answered.wait_for(lambda: nexts and nexts[-1] >= answered_at, timeout=5)
            done = (nexts[-1] - t0) * 1000
        hwm = vm_hwm(p.pid)
        p.terminate()
        p.wait()
        time.sleep(0.1)  # let its pending /next request notice
        return total, times, hwm, done

    py_env = dict(aws_env, AWS_ENDPOINT_URL=moto_url, PYTHONPATH=os.path.join(here, "original"))
    py_call = ("import handler, json, sys, time\n"
               "hosts = sys.argv[1:]\n"
               "times = []\n"
               "for h in hosts:\n"
               "    s = time.perf_counter()\n"
               "    r = handler.lambda_handler({'body': json.dumps({'hostname': h}), 'arn': %r}, None)\n"
               "    assert r['statusCode'] == 200\n"
               "    times.append((time.perf_counter() - s) * 1000)\n"
               "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
               "print(json.dumps([times, int(hwm) / 1024]))\n") % topic

    def python_process(hosts):
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-c", py_call, *hosts], env=py_env, stdout=subprocess.PIPE)
        out = p.stdout.read()
        assert p.wait() == 0
        times, hwm = json.loads(out)
        return (time.perf_counter() - t0) * 1000, times, hwm

    rust_cold, py_cold, n = {e: [] for e in exes}, [], 0
    for i in range(runs):  # alternate, so all see the same machine noise
        for e in exes:
            rust_cold[e].append(rust_process(e, [f"c{i % clusters}-a"])); n += 1
        py_cold.append(python_process([f"c{i % clusters}-a"])); n += 1
    hosts = [f"c{k}-a" for k in range(warm)]
    rust_warm = {}
    for e in exes:
        rust_warm[e] = rust_process(e, hosts)[1][1:]; n += warm
    py_warm = python_process(hosts)[1][1:]; n += warm

    published = len([m for t in json.load(__import__("urllib.request").request.urlopen(moto_url + "/moto-api/data.json"))["sns"]["Topic"]
                     for m in t["sent_notifications"]])
    assert published == n, f"{published} messages published, expected {n}"

    med = statistics.median
    pc, pm, pw = med(p[0] for p in py_cold), max(p[2] for p in py_cold), med(py_warm)
    print(f"{runs} cold starts each, alternated; {warm - 1} warm invocations each; {published} messages published; "
          f"inventory of {clusters} clusters")

    def speed(rust, python):
        return f"{python / rust:.1f}x faster" if rust <= python else f"{rust / python:.1f}x slower"

    for e in exes:
        cold = rust_cold[e]
        rc, rd, rm, rw = med(r[0] for r in cold), med(r[3] for r in cold), max(r[2] for r in cold), med(rust_warm[e])
        print(f"\n{e}\n")
        print("| | Rust function | original (Python) | ratio |")
        print("|---|---|---|---|")
        print(f"| cold start to the answer, median | {rc:.1f} ms | {pc:.1f} ms | {speed(rc, pc)} |")
        print(f"| cold start to all work done (Rust: asks for the next event; Python: exits), median | {rd:.1f} ms | {pc:.1f} ms | {speed(rd, pc)} |")
        print(f"| warm invocation, median | {rw:.2f} ms | {pw:.2f} ms | {speed(rw, pw)} |")
        print(f"| peak RSS (VmHWM), max over cold starts | {rm:.1f} MB | {pm:.1f} MB | {rm / pm:.2f} |")
finally:
    moto.terminate()
    moto.wait()
