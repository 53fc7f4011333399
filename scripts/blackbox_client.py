#!/usr/bin/env python3
"""A black-box buyer crowd that knows only the contract (docs/CONTRACT.md).

Usage: blackbox_client.py BASE_URL ADMIN_TOKEN [BUYERS] [STOCK]

Creates an event, lets BUYERS users enter the queue concurrently, waits until
each is ACTIVE (status polling), releases them all at once with a barrier and
has each reserve one item. Passes (exit 0) only if exactly STOCK succeed, the
rest get 409 SOLD_OUT, ids are unique and the event reports remaining 0.
Python standard library only, so it shares no code with the Rust crates.
"""
import json
import sys
import threading
import time
import urllib.error
import urllib.request


def call(method, url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def main():
    base, admin = sys.argv[1].rstrip("/"), sys.argv[2]
    buyers = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    stock = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    event = "blackbox-%d" % int(time.time() * 1000)
    status, body = call("POST", base + "/api/v1/admin/events",
                        {"eventId": event, "stock": stock, "activeCapacity": buyers},
                        {"Authorization": "Bearer " + admin})
    if status != 201:
        print("set-up refused: %s %s" % (status, body))
        return 2

    barrier = threading.Barrier(buyers)
    results = [None] * buyers
    errors = []

    def buyer(i):
        try:
            status, entered = call("POST", base + "/api/v1/queue/enter",
                                   {"eventId": event, "userId": "bb-%d" % i})
            assert status == 200, (status, entered)
            token = entered["token"]
            deadline = time.time() + 30
            while entered.get("status") != "ACTIVE":
                assert time.time() < deadline, "never admitted"
                time.sleep(0.02)
                _, entered = call("GET", base + "/api/v1/queue/status", None,
                                  {"X-Queue-Token": token})
            barrier.wait(timeout=60)
            results[i] = call("POST", base + "/api/v1/tickets/reserve",
                              {"eventId": event, "quantity": 1}, {"X-Queue-Token": token})
        except Exception as e:  # reported below; the barrier is broken for the others
            errors.append("buyer %d: %r" % (i, e))
            barrier.abort()

    threads = [threading.Thread(target=buyer, args=(i,)) for i in range(buyers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print("run failed:", errors[:5])
        return 2

    ok = [b["reservationId"] for s, b in results if s == 200]
    sold_out = [b for s, b in results if s == 409 and b.get("error") == "SOLD_OUT"]
    other = [(s, b) for s, b in results if s != 200 and not (s == 409 and b.get("error") == "SOLD_OUT")]
    _, ev = call("GET", base + "/api/v1/events/" + event)
    verdict = (len(ok) == stock and len(sold_out) == buyers - stock and not other
               and len(set(ok)) == len(ok) and ev["remaining"] == 0 and ev["sold"] == stock)
    print("%s blackbox: %d ok / %d sold-out / %d other; remaining %s, sold %s"
          % ("PASS" if verdict else "FAIL", len(ok), len(sold_out), len(other),
             ev["remaining"], ev["sold"]))
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
