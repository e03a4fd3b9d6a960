"""HTTP under hostile clients: a thousand slow half-open connections, sixty stalled
one-megabyte uploads and a long admin load never keep /healthz from answering or grow
the daemon without bound; bodies over the limit are refused before they are read;
admin routes exist only on the admin listener and only with a valid bearer token; the
front door refuses a request without an access token on its headers, whatever its body,
and only a signed-in request reaches its JSON parser;
wrong methods get 405 with Allow, HEAD works where GET does, a path that is not text
gets 400; every error is well-formed JSON and no database text reaches a client."""
import http.client
import json
import os
import resource
import sys
import threading
import time

from harness import check, connect, http_get, http_post, log, run, secret, tls_context, token

HEALTH_DEADLINE = 2.0  # seconds a probe may take while the daemon is under attack


def request(url, method, path, body=None, headers=None, source="127.0.0.1"):
    host, port = url.split("//")[1].split(":")
    if url.startswith("https://"):
        c = http.client.HTTPSConnection(host, int(port), timeout=10, source_address=(source, 0),
                                        context=tls_context(url))
    else:
        c = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def json_error(status, body):
    check(body, f"{status}: an error has a body")
    j = json.loads(body)  # well-formed, whatever the error
    check(isinstance(j.get("error"), str) and j["error"], f"{status}: {j}")
    return j["error"]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def probe_fast(url):
    t0 = time.time()
    code, _ = http_get(url + "/healthz")
    took = time.time() - t0
    check(code == 200 and took < HEALTH_DEADLINE, f"/healthz answered {code} in {took:.2f} s")
    return took


def test_hostile_http(ns):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    ns.start_all()
    # Memory is measured on the build without sanitizers: AddressSanitizer keeps
    # freed memory in quarantine and adds shadow memory to what it holds.
    plain = os.environ.get("LMP_VALGRIND_BUILD")
    exe = os.path.join(plain, "services", "appliance-fulfilment", "lmp-appliance-fulfilment") if plain else None
    target = ns.start("appliance-fulfilment", exe=exe if exe and os.path.exists(exe) else None,
                      LMP_KAFKA_GROUP_ID="plain-" + ns.prefix)
    url, admin, pid = target.http, target.admin, target.pid
    auth = {"Authorization": "Bearer " + secret("admin-token")}

    # Admin routes: not on the public listener, and not without the operator's token.
    code, _, body = request(url, "POST", "/v1/admin/load", body=b"{}")
    check(code == 404, f"an admin route on the public listener: {code}")
    for headers in ({}, {"Authorization": "Bearer " + "0" * 64}, {"Authorization": "Basic b3BlcmF0b3I6eA=="}):
        code, hdrs, body = request(admin, "POST", "/v1/admin/load", headers=headers,
                                   body=json.dumps({"skus": [{"sku": "NS-FORGED"}]}).encode())
        check(code == 401, f"admin load with {headers}: {code}")
        json_error(code, body)
    code, _, body = request(admin, "GET", "/v1/inventory", headers=auth)
    check(code == 200 and b"NS-FORGED" not in body, "nothing loaded without the token")

    # Methods, paths and bodies.
    code, hdrs, body = request(admin, "DELETE", "/v1/admin/load", headers=auth)
    check(code == 405 and hdrs.get("Allow") == "POST", f"DELETE: {code} {hdrs}")
    json_error(code, body)
    code, hdrs, body = request(url, "POST", "/healthz", body=b"{}")
    check(code == 405 and hdrs.get("Allow") == "GET, HEAD", f"POST /healthz: {code} {hdrs}")
    code, hdrs, body = request(admin, "HEAD", "/v1/inventory", headers=auth)
    check(code == 200 and body == b"", f"HEAD: {code} {body[:50]!r}")
    code, _, body = request(url, "GET", "/v1/%FF%FE")
    check(code == 400, f"a path that is not text: {code}")
    json_error(code, body)
    code, _, body = request(url, "GET", "/nowhere")
    check(code == 404, f"unknown path: {code}")
    json_error(code, body)
    code, _, body = request(admin, "POST", "/v1/admin/load", body=b"{not json", headers=auth)
    check(code == 400, f"bad JSON: {code}")
    json_error(code, body)
    code, _, body = request(admin, "POST", "/v1/admin/load", body=b"x" * (1024 * 1024 + 1), headers=auth)
    check(code == 413, f"over the limit: {code}")
    check("at most 1048576 bytes" in json_error(code, body), body)
    code, _, body = request(ns.http["intake"], "POST", "/v1/onboardings/x", body=b"{}")
    check(code == 405, f"POST to a GET route: {code}")
    # The front door: a request without a token (or with one that is not an access
    # token) is refused on its headers, whatever its body; a body over the limit is
    # refused on its announced length, before the token is verified (on a worker, once
    # a body is in); only a signed-in request reaches the JSON parser.
    door = ns.http["intake"]
    bearer = {"Authorization": "Bearer " + token()}
    big = b"{" + b" " * (300 * 1024) + b"}"
    for what, hdrs, body, want, challenge in [
            ("no token, over the limit", {}, big, 401, 'Bearer realm="lmp"'),
            ("not an access token, over the limit", {"Authorization": "Bearer x.y.z"}, big, 401,
             'Bearer realm="lmp", error="invalid_token"'),
            ("signed in, over the limit", bearer, big, 413, None),
            ("no token, not JSON", {}, b"{not json", 401, 'Bearer realm="lmp"'),
            ("signed in, not JSON", bearer, b"{not json", 400, None)]:
        code, got, text = request(door, "POST", "/v1/onboardings", body=body,
                                  headers=dict(hdrs, **{"Content-Type": "application/json"}))
        check(code == want and got.get("WWW-Authenticate") == challenge, f"{what}: {code} {got}, want {want}")
        err = json_error(code, text)
        check(code != 413 or "at most 262144 bytes" in err, err)
    # A refusal by the database names the rule, not the server's text.
    code, _, body = request(ns.admin["allocation"], "POST", "/v1/admin/load", headers=auth,
                            body=json.dumps({"pools": [{"partner_id": "partner-northwind", "product": "NOT_A_PRODUCT",
                                                        "total": 5}]}).encode())
    err = json_error(code, body)
    check(code == 400 and "pools_product_check" in err and "violates" not in err and "ERROR" not in err, err)

    # A thousand slow half-open connections from one address: they get at most the
    # per-address limit; the probe from another address is answered at once.
    slow = []
    for i in range(1000):
        try:
            s = connect(url, "127.0.0.2", timeout=2)
            slow.append(s)
            s.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        except OSError:
            pass
    took = max(probe_fast(url) for _ in range(5))
    log(f"/healthz with 1000 slow connections open: {took * 1000:.0f} ms at worst")

    # Sixty stalled one-megabyte uploads from sixty addresses, with the operator's
    # token (without it the upload is refused before its body is read): the bodies held
    # at once are bounded by http.body_budget_bytes; the rest are refused with 503.
    before = rss_kb(pid)
    stalled = []
    for i in range(60):
        try:
            s = connect(admin, f"127.0.1.{i + 1}")
            stalled.append(s)
            s.send(b"POST /v1/admin/load HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Authorization: " + auth["Authorization"].encode() + b"\r\n"
                   b"Content-Length: 1048576\r\n\r\n" + b" " * (900 * 1024))
        except OSError:
            pass
    time.sleep(1)
    grown = (rss_kb(pid) - before) / 1024
    log(f"RSS grew {grown:.1f} MiB with 60 stalled uploads of 900 KiB")
    # The budget's 8 MiB of bodies, the connections' own buffers, and over TLS each
    # connection's session and record buffers (tens of KiB each).
    limit = 16 if admin.startswith("https://") else 12
    check(grown < limit, f"60 stalled uploads grew the daemon by {grown:.1f} MiB (budget 8 MiB, limit {limit})")
    probe_fast(url)
    for s in slow + stalled:
        s.close()

    # A long admin load runs on a worker; probes keep answering meanwhile.
    done = {}

    def big_load():
        done["result"] = http_post(admin + "/v1/admin/load", token=secret("admin-token"), timeout=120, obj={
            "skus": [{"sku": "NS-BULK"}], "inventory": [{"sku": "NS-BULK", "serial_prefix": "B-", "count": 1000000}]})
    t = threading.Thread(target=big_load)
    t0 = time.time()
    t.start()
    worst = 0.0
    while t.is_alive() and time.time() - t0 < 120:
        worst = max(worst, probe_fast(url))
        time.sleep(0.1)
    t.join(120)
    check(done.get("result", (0,))[0] == 200, f"the big load: {done.get('result')}")
    log(f"admin load of a million units took {time.time() - t0:.1f} s; /healthz at worst {worst * 1000:.0f} ms")


if __name__ == "__main__":
    sys.exit(run(test_hostile_http))
