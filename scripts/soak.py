#!/usr/bin/env python3
"""Soak: the release service against the simulator at a realistic rate, with periodic faults.

    scripts/soak                          60 s (what .ci/run uses)
    scripts/soak --duration 4h            by hand, for hours
    scripts/soak --codes 100 --rate 5/s   heavier

Every --fault-every seconds one fault from the cycle (abrupt drop, close 1001, mute longer than
the idle timeout, a malformed frame, an unknown type, an error frame, a 429 refusal) is injected
through the simulator's admin API. RSS is sampled every second. At the end the exchange is
muted and the service's per-(type, code) counts must equal what the simulator sent.

Fails (exit 1) on any loss, any pipeline drop, a missed reconnect, or RSS growth: the largest
RSS of the last third of the run may exceed that of the middle third by at most 10% + 2 MiB.
Writes target/soak/report.json and prints a summary.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "upbit-exporter")

FAULTS = [
    {"kind": "drop"},
    {"kind": "malformed"},
    {"kind": "close", "code": 1001, "reason": "soak"},
    {"kind": "unknown_type"},
    {"kind": "mute", "duration_ms": 4000},  # longer than the 3 s idle timeout below
    {"kind": "error_frame", "name": "INVALID_PARAM"},
    {"kind": "refuse_handshakes", "status": 429, "duration_ms": 1500, "retry_after_secs": 1},
    {"kind": "drop"},
]


def duration(text):
    match = re.fullmatch(r"(\d+)(ms|s|m|h)?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text}")
    value, unit = int(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    if data:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for(what, check, deadline=30.0):
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"soak: timed out waiting for {what}")


def series(scrape, name):
    """Yields (labels dict, value) for every series of one metric name."""
    for line in scrape.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, labels = head.partition("{")
        if metric != name:
            continue
        parsed = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
        yield parsed, float(value)


def total(scrape, name):
    return sum(v for _, v in series(scrape, name))


def rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rpartition(")")[2].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=duration, default=60.0)
    parser.add_argument("--codes", type=int, default=30, help="KRW markets subscribed")
    parser.add_argument("--types", default="ticker,trade,orderbook")
    parser.add_argument("--rate", default="5/s", help="messages per (type, code)")
    parser.add_argument("--fault-every", type=duration, default=6.0)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()

    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)

    sim = subprocess.Popen(
        [BIN, "simulate", "--listen", "127.0.0.1:0", "--rate", args.rate, "--seed", "7"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    service = None
    try:
        line = sim.stdout.readline()
        match = re.match(r"simulator listening on http://(\S+)", line)
        if not match:
            raise SystemExit(f"soak: unexpected simulator output {line!r}")
        sim_addr = match.group(1)
        _, markets = http(f"http://{sim_addr}/v1/market/all")
        codes = [m["market"] for m in json.loads(markets) if m["market"].startswith("KRW-")]
        codes = codes[: args.codes]
        http_addr = f"127.0.0.1:{free_port()}"
        env = dict(
            os.environ,
            RUST_LOG="warn",
            UPBIT_EXPORTER__UPBIT__URL=f"ws://{sim_addr}/websocket/v1",
            UPBIT_EXPORTER__UPBIT__CODES=",".join(codes),
            UPBIT_EXPORTER__UPBIT__TYPES=args.types,
            UPBIT_EXPORTER__HTTP__LISTEN=http_addr,
            UPBIT_EXPORTER__CONNECTION__PING_INTERVAL="1s",
            UPBIT_EXPORTER__CONNECTION__IDLE_TIMEOUT="3s",
            UPBIT_EXPORTER__CONNECTION__BACKOFF_MIN="100ms",
            UPBIT_EXPORTER__CONNECTION__BACKOFF_MAX="2s",
        )
        service = subprocess.Popen([BIN, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        base = f"http://{http_addr}"
        wait_for("the service to be ready", lambda: http(f"{base}/readyz")[0] == 200)
        print(f"soak: {len(codes)} codes x {args.types} at {args.rate}, a fault every "
              f"{args.fault_every:g} s, for {args.duration:g} s")

        start = time.monotonic()
        samples, faults, next_fault, fault_index = [], [], args.fault_every, 0
        while (elapsed := time.monotonic() - start) < args.duration:
            if service.poll() is not None:
                raise SystemExit(f"soak: the service exited with {service.returncode}")
            samples.append((round(elapsed, 1), rss_kib(service.pid)))
            if elapsed >= next_fault:
                fault = FAULTS[fault_index % len(FAULTS)]
                status, _ = http(f"http://{sim_addr}/admin/faults", fault)
                if status not in (200, 204):
                    raise SystemExit(f"soak: injecting {fault} answered {status}")
                faults.append(fault["kind"])
                fault_index += 1
                next_fault += args.fault_every
            time.sleep(1.0)

        # Stop the data (and any mute or refusal still in force first), then reconcile.
        http(f"http://{sim_addr}/admin/faults", {"kind": "reset"})
        wait_for("a connection after the last fault",
                 lambda: http(f"{base}/readyz")[0] == 200, deadline=30)
        http(f"http://{sim_addr}/admin/faults", {"kind": "mute"})
        reconciled = {}

        def counts_match():
            sent = json.loads(http(f"http://{sim_addr}/admin/stats")[1])["sent"]
            scrape = http(f"{base}/metrics")[1]
            received = {}
            for labels, value in series(scrape, "upbit_received_messages_total"):
                if value > 0:
                    received.setdefault(labels["type"], {})[labels["code"]] = int(value)
            reconciled.update(sent=sent, received=received, scrape=scrape)
            return sent and sent == received

        matched = True
        try:
            wait_for("the counts to match", counts_match, deadline=30)
        except SystemExit:
            matched = False
        scrape = reconciled["scrape"]
        cpu = cpu_seconds(service.pid)
        final_rss = rss_kib(service.pid)
    finally:
        for process in (service, sim):
            if process and process.poll() is None:
                process.terminate()
        for process in (service, sim):
            if process:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()

    sent_total = sum(sum(c.values()) for c in reconciled["sent"].values())
    received_total = sum(sum(c.values()) for c in reconciled["received"].values())
    dropped = total(scrape, "upbit_dropped_messages_total")
    connections = total(scrape, "upbit_connections_total")
    disconnections = {labels["reason"]: int(v) for labels, v in series(scrape, "upbit_disconnections_total") if v}
    decode_errors = {labels["reason"]: int(v) for labels, v in series(scrape, "upbit_decode_errors_total") if v}
    rss = [kib for _, kib in samples]
    third = max(1, len(rss) // 3)
    middle_max, last_max = max(rss[third: 2 * third] or rss), max(rss[-third:])
    growth_limit = middle_max * 1.10 + 2048
    reconnect_faults = sum(1 for f in faults if f in ("drop", "close", "mute"))

    failures = []
    if not matched or sent_total != received_total:
        failures.append(f"loss: the simulator sent {sent_total} messages, the service counted {received_total}")
    if dropped:
        failures.append(f"{dropped:.0f} messages dropped in the pipeline")
    if connections < reconnect_faults + 1:
        failures.append(f"{connections:.0f} connections for {reconnect_faults} connection-ending faults")
    if last_max > growth_limit:
        failures.append(f"RSS grew: {last_max} KiB at the end against {middle_max} KiB mid-run")
    if service.returncode not in (0, None):
        failures.append(f"the service exited with {service.returncode} on SIGTERM")

    report = {
        "duration_s": args.duration, "codes": len(codes), "types": args.types, "rate": args.rate,
        "faults": faults, "messages_sent": sent_total, "messages_counted": received_total,
        "dropped": dropped, "connections": connections, "disconnections": disconnections,
        "decode_errors": decode_errors, "cpu_seconds": round(cpu, 2),
        "rss_kib": {"first": rss[0], "min": min(rss), "max": max(rss), "final": final_rss,
                    "middle_third_max": middle_max, "last_third_max": last_max},
        "rss_samples": samples, "failures": failures,
    }
    out = os.path.join(ROOT, "target", "soak")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)

    print(f"  messages   sent {sent_total}, counted {received_total}, dropped {dropped:.0f}")
    by_kind = {kind: faults.count(kind) for kind in dict.fromkeys(faults)}
    print(f"  faults     {len(faults)}: " + ", ".join(f"{k} x{n}" for k, n in by_kind.items()))
    print(f"  links      {connections:.0f} connections; disconnections {disconnections}")
    print(f"  decode     errors by reason {decode_errors} (the injected bad frames)")
    print(f"  memory     RSS {rss[0] / 1024:.1f} MiB at start, {max(rss) / 1024:.1f} MiB max, "
          f"{final_rss / 1024:.1f} MiB at the end")
    print(f"  cpu        {cpu:.2f} s over {args.duration:g} s ({cpu / args.duration * 100:.2f}% of a core)")
    if failures:
        for failure in failures:
            print(f"soak: FAIL: {failure}", file=sys.stderr)
        sys.exit(1)
    print("soak: passed")


if __name__ == "__main__":
    main()
