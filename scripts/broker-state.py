#!/usr/bin/env python3
"""What the test broker holds, through RabbitMQ's management API (127.0.0.1:15672).

    broker-state.py count                  queues in all vhosts
    broker-state.py leftover-test-vhosts   fails (exit 1) naming every test vhost
                                           (trd-test.*) that is still there
    broker-state.py fill VHOST N           makes VHOST with N durable queues (other
                                           work on the same broker, for a soak run)
    broker-state.py drop VHOST             deletes VHOST and its queues

scripts/test runs both: a test run must leave the broker as it found it (every test
deletes its own vhost, tests/support/broker.rs).
"""
import base64
import json
import sys
import urllib.request

API = "http://127.0.0.1:15672/api"
PREFIX = "trd-test."


def call(method, path, body=None):
    request = urllib.request.Request(
        f"{API}/{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode(),
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        text = answer.read()
        return json.loads(text) if text else None


def get(path):
    return call("GET", path)


def main(argv):
    if argv[1:] == ["count"]:
        print(len(get("queues?columns=name")))
        return 0
    if argv[1:] == ["leftover-test-vhosts"]:
        left = sorted(v["name"] for v in get("vhosts?columns=name") if v["name"].startswith(PREFIX))
        if left:
            queues = sum(1 for q in get("queues?columns=vhost") if q["vhost"] in left)
            print(f"{len(left)} test vhosts left behind ({queues} queues): {', '.join(left)}")
            return 1
        print("no test vhost left behind")
        return 0
    if len(argv) == 4 and argv[1] == "fill":
        vhost, n = argv[2], int(argv[3])
        call("PUT", f"vhosts/{vhost}", {})
        call("PUT", f"permissions/{vhost}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
        for i in range(n):
            call("PUT", f"queues/{vhost}/other-work-{i}", {"durable": True, "arguments": {"x-queue-type": "quorum"}})
        print(f"{vhost}: {n} queues")
        return 0
    if len(argv) == 3 and argv[1] == "drop":
        call("DELETE", f"vhosts/{argv[2]}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
