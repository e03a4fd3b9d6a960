"""The front door: a frontend POSTs an onboarding as JSON to intake and gets 202 with
where to follow it, once the broker has the request; the same rules answer a bad one
at once with 422 and every reason, and publish nothing; a repeat answers the same
without a second message, the same id with other content is 409; malformed bodies get
4xx with a clear JSON error; a long poll answers the moment the onboarding is final;
a request the broker will not take is 503 and nothing is recorded."""
import json
import os
import sys
import threading
import time
import urllib.request
import uuid

from harness import CONFIG, check, decode, example, headers, log, run, wait_for


def call(url, method="GET", body=None, ctype="application/json", hdrs=None, timeout=90):
    h = dict(hdrs or {})
    if body is not None and ctype:
        h["Content-Type"] = ctype
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def error_of(status, body):
    j = json.loads(body)
    check(isinstance(j.get("error"), str) and j["error"], f"{status}: no error text in {body}")
    return j["error"]


def requested(ns, rid):
    return [m for m in ns.consume_all("onboarding.requested") if m.key() == rid.encode()]


def test_front_door(ns):
    ns.start_all()
    door = ns.http["intake"]

    # 1. Taken: 202 with the status URL, once the broker has it; then a long poll that
    # answers when the onboarding is confirmed.
    r = example("virtual-core.json")
    trace = uuid.uuid4().hex
    t0 = time.time()
    code, h, body = call(door + "/v1/onboardings", "POST", r,
                         hdrs={"traceparent": f"00-{trace}-{uuid.uuid4().hex[:16]}-01"})
    took = time.time() - t0
    check(code == 202, f"{code} {body}")
    answer = json.loads(body)
    check(answer["onboarding_id"] == r["request_id"] and answer["status"] == "submitted", answer)
    check(h["Location"] == f"/v1/onboardings/{r['request_id']}" == answer["status_url"], h)
    check(answer["warnings"] == [], answer["warnings"])
    sent = requested(ns, r["request_id"])
    check(len(sent) == 1, "on the broker when 202 came")
    name, value = decode(sent[0].value())
    check(name == "onboarding.requested" and value["request_id"] == r["request_id"] and
          value["customer"]["legal_name"] == r["customer"]["legal_name"] and value["users"] == r["users"], value)
    check(headers(sent[0])["traceparent"].split("-")[1] == trace, "the frontend's trace goes on")
    t0 = time.time()
    code, _, body = call(door + f"/v1/onboardings/{r['request_id']}?wait=60")
    waited = time.time() - t0
    check(code == 200 and json.loads(body)["status"] == "confirmed", f"{code} {body}")
    check(waited < 30, f"the long poll answered {waited:.1f} s after the ask")
    log(f"202 in {took * 1000:.0f} ms; the long poll answered 'confirmed' after {waited:.1f} s")

    # 2. A repeat answers the same and sends nothing; the same id with other content is 409.
    code, _, body = call(door + "/v1/onboardings", "POST", r)
    check(code == 202 and json.loads(body)["onboarding_id"] == r["request_id"], f"repeat: {code} {body}")
    check(len(requested(ns, r["request_id"])) == 1, "a repeat is not sent again")
    other = dict(r, users={"tier": 9, "cloud": 0, "sat": 0})
    code, _, body = call(door + "/v1/onboardings", "POST", other)
    check(code == 409 and "already used" in error_of(code, body), f"{code} {body}")

    # 3. The rules answer at once with every reason; nothing is published.
    bad = example("rejected-breach.json")
    code, _, body = call(door + "/v1/onboardings", "POST", bad)
    check(code == 422, f"{code} {body}")
    j = json.loads(body)
    codes = {x["code"] for x in j["reasons"]}
    check(j["status"] == "rejected" and {"BREACH_OR_INCIDENT", "NOT_CONFIRMED", "UNKNOWN_SKU"} <= codes, codes)
    check(all(x["field"] is not None and x["message"] for x in j["reasons"]), j["reasons"])
    check(requested(ns, bad["request_id"]) == [], "a refused request is not published")

    # 4. Malformed requests: a clear error, nothing published.
    base = example("virtual-core.json")
    wrong_type = json.loads(json.dumps(base))
    wrong_type["users"]["tier"] = "eight"
    missing = {k: v for k, v in base.items() if k != "customer"}
    not_utf8 = json.dumps(base).replace(base["customer"]["legal_name"], "Caf\udce9").encode("utf-8", "surrogatepass")
    for what, body, ctype, want, says in [
        ("not JSON", b"{not json", "application/json", 400, "JSON"),
        ("an array", b"[]", "application/json", 400, "JSON object"),
        ("a wrong type", wrong_type, "application/json", 400, "users.tier"),
        ("a missing record", missing, "application/json", 400, "customer"),
        ("not UTF-8", not_utf8, "application/json", 400, ""),
        ("a form post", b"a=b", "application/x-www-form-urlencoded", 415, "JSON"),
        ("no content type", b"{}", None, 415, "JSON"),
        ("too large", b"{" + b" " * (300 * 1024) + b"}", "application/json", 413, "at most"),
    ]:
        code, _, text = call(door + "/v1/onboardings", "POST", body, ctype=ctype)
        check(code == want and says in error_of(code, text), f"{what}: {code} {text}")
    check(requested(ns, base["request_id"]) == [], "nothing malformed was published")
    for query in ("wait=abc", "wait=0", "wait=61", "wait=5x"):
        code, _, text = call(door + f"/v1/onboardings/{r['request_id']}?{query}")
        check(code == 400 and "wait" in error_of(code, text), f"{query}: {code} {text}")
    t0 = time.time()
    code, _, text = call(door + f"/v1/onboardings/{uuid.uuid4()}?wait=2")
    check(code == 404 and time.time() - t0 >= 1.9, f"an unknown id, waited for: {code} after {time.time() - t0:.1f} s")

    # 5. Long polls wait without holding a worker: more of them than workers, and a
    # request behind them answered at once.
    ids = []
    for _ in range(6):
        x = example("virtual-core.json")
        code, _, _ = call(door + "/v1/onboardings", "POST", x)
        check(code == 202, code)
        ids.append(x["request_id"])
    results = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, call(
        door + f"/v1/onboardings/{i}?wait=60"))) for i in ids]
    for t in threads:
        t.start()
    code, _, _ = call(door + "/v1/form")
    check(code == 200, "a request behind six long polls on two workers")
    for t in threads:
        t.join(90)
    check(all(results[i][0] == 200 and json.loads(results[i][2])["status"] == "confirmed" for i in ids),
          {i: results.get(i, (None,))[0] for i in ids})

    # 6. A broker that will not take the request: 503, and nothing recorded. This intake
    # speaks as the warehouse, which may not write requests.
    conf = os.path.join(CONFIG, "intake.conf")
    with open(conf) as fh:
        text = fh.read().replace("kafka-lmp-intake.", "kafka-warehouse.")
    own = os.path.join(os.environ.get("LMP_BUILD_DIR", ""), "Testing", f"{ns.db}-warehouse-intake.conf")
    with open(own, "w") as fh:
        fh.write(text)
    p = ns.start("intake", wait_ready=False, LMP_CONFIG=own, LMP_KAFKA_GROUP_ID="door-" + ns.prefix)
    wait_for("the second intake listening", lambda: call(p.http + "/v1/form")[0] == 200)
    x = example("virtual-core.json")
    code, h, text = call(p.http + "/v1/onboardings", "POST", x)
    check(code == 503 and h.get("Retry-After") and "try again" in error_of(code, text), f"{code} {h} {text}")
    check(requested(ns, x["request_id"]) == [], "nothing published")
    check(ns.sql("SELECT count(*) FROM onboardings WHERE onboarding_id = %s", x["request_id"]) == [(0,)],
          "nothing recorded")
    log("refusals: 422 with reasons, 409, 400/413/415 malformed, 503 when the broker refuses; none published")

    # 7. Long polls hold at most half the connections (here 4 of 8): one more is
    # answered at once, and the probes still get through.
    p = ns.start("intake", LMP_HTTP_MAX_CONNECTIONS=8, LMP_KAFKA_GROUP_ID="cap-" + ns.prefix)
    held = {}
    pollers = [threading.Thread(target=lambda k=k: held.__setitem__(k, call(
        p.http + f"/v1/onboardings/{uuid.uuid4()}?wait=15"))) for k in range(4)]
    for t in pollers:
        t.start()
    wait_for("four long polls held", lambda: "\nlmp_http_long_polls{service=\"intake\"} 4\n" in call(
        p.http + "/metrics")[2], timeout=10, show=lambda: [x for x in call(p.http + "/metrics")[2].splitlines()
                                                             if "long_polls" in x])
    t0 = time.time()
    code, _, text = call(p.http + f"/v1/onboardings/{uuid.uuid4()}?wait=15")
    check(code == 404 and time.time() - t0 < 5, f"the fifth long poll: {code} after {time.time() - t0:.1f} s")
    check(call(p.http + "/readyz")[0] == 200, "readyz behind the held long polls")
    for t in pollers:
        t.join(60)
    check(len(held) == 4 and all(v[0] == 404 for v in held.values()), f"the held long polls: {held}")
    log("long polls capped at half the connections; one past the cap answered at once")


if __name__ == "__main__":
    sys.exit(run(test_front_door))
