"""The front door: a partner's frontend, signed in with the partner's access token,
POSTs an onboarding as JSON to intake and gets 202 with where to follow it, once the
broker has the request; the same rules answer a bad one at once with 422 and every
reason, and publish nothing; a repeat answers the same without a second message, the
same id with other content is 409; malformed bodies get 4xx with a clear JSON error; a
long poll answers the moment the onboarding is final; a request the broker will not
take is 503 and nothing is recorded. Intake acts for the signed-in partner only: no
token is 401, a body naming another partner is 403, both publishing nothing; another
partner's onboarding is the same 404 as one that does not exist; the mails go to
whoever signed in; request ids are the partner's own; submissions are rate limited."""
import json
import os
import sys
import threading
import time
import urllib.request
import uuid

from harness import (CONFIG, check, decode, example, headers, log, onboarding_id, run, tls_context, token,
                     token_claims, wait_for)

NORTH, EAST = "partner-northwind", "partner-eastwind"


def call(url, method="GET", body=None, ctype="application/json", hdrs=None, timeout=90, tok=NORTH):
    """An HTTP call; signed in as the demo user of partner tok (None: no token)."""
    h = dict(hdrs or {})
    if tok is not None:
        h["Authorization"] = "Bearer " + token(tok)
    if body is not None and ctype:
        h["Content-Type"] = ctype
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=tls_context(url)) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def error_of(status, body):
    j = json.loads(body)
    check(isinstance(j.get("error"), str) and j["error"], f"{status}: no error text in {body}")
    return j["error"]


def requested(ns, r):
    """The request r on the broker: keyed by its onboarding id (as the front door
    publishes it) or by its request id (as a frontend on Kafka would)."""
    keys = {onboarding_id(r).encode(), r["request_id"].encode()}
    return [m for m in ns.consume_all("onboarding.requested") if m.key() in keys]


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
    oid = onboarding_id(r)
    check(answer["onboarding_id"] == oid and answer["status"] == "submitted", answer)
    check(h["Location"] == f"/v1/onboardings/{oid}" == answer["status_url"], h)
    check(answer["warnings"] == [], answer["warnings"])
    sent = requested(ns, r)
    check(len(sent) == 1 and sent[0].key().decode() == oid, "on the broker when 202 came, keyed by the onboarding")
    name, value = decode(sent[0].value())
    check(name == "onboarding.requested" and value["request_id"] == r["request_id"] and
          value["customer"]["legal_name"] == r["customer"]["legal_name"] and value["users"] == r["users"], value)
    # The partner and the submitter are the signed-in user's, whatever the body said.
    nora = token_claims(token(NORTH))["email"]
    check(value["partner_id"] == NORTH and value["submitted_by"] == nora != r["submitted_by"],
          f"the submitter is whoever signed in: {value['partner_id']} {value['submitted_by']}")
    check(headers(sent[0])["traceparent"].split("-")[1] == trace, "the frontend's trace goes on")
    t0 = time.time()
    code, _, body = call(door + f"/v1/onboardings/{oid}?wait=60")
    waited = time.time() - t0
    check(code == 200 and json.loads(body)["status"] == "confirmed", f"{code} {body}")
    check(waited < 30, f"the long poll answered {waited:.1f} s after the ask")
    mails = {m["kind"]: m["recipient"] for m in json.loads(body)["mails"]}
    check(mails.get("confirmation") == nora, f"the confirmation goes to the signed-in user: {mails}")
    log(f"202 in {took * 1000:.0f} ms; the long poll answered 'confirmed' after {waited:.1f} s")

    # 2. A repeat answers the same and sends nothing; the same id with other content is 409.
    code, _, body = call(door + "/v1/onboardings", "POST", r)
    check(code == 202 and json.loads(body)["onboarding_id"] == oid, f"repeat: {code} {body}")
    check(len(requested(ns, r)) == 1, "a repeat is not sent again")
    other = dict(r, users={"tier": 9, "cloud": 0, "sat": 0})
    code, _, body = call(door + "/v1/onboardings", "POST", other)
    check(code == 409 and "already used" in error_of(code, body), f"{code} {body}")
    check(len(requested(ns, r)) == 1, "a conflict is not sent")

    # 3. Signed in, and for one's own partner only.
    signed_in(ns, door, r)

    # 3b. The rules answer at once with every reason; nothing is published.
    bad = example("rejected-breach.json")
    code, _, body = call(door + "/v1/onboardings", "POST", bad)
    check(code == 422, f"{code} {body}")
    j = json.loads(body)
    codes = {x["code"] for x in j["reasons"]}
    check(j["status"] == "rejected" and {"BREACH_OR_INCIDENT", "NOT_CONFIRMED", "UNKNOWN_SKU"} <= codes, codes)
    check(all(x["field"] is not None and x["message"] for x in j["reasons"]), j["reasons"])
    check(requested(ns, bad) == [], "a refused request is not published")

    # 4. Malformed requests: a clear error, nothing published.
    base = example("virtual-core.json")
    wrong_type = json.loads(json.dumps(base))
    wrong_type["users"]["tier"] = "eight"
    missing = {k: v for k, v in base.items() if k != "customer"}
    not_utf8 = json.dumps(base).replace(base["customer"]["legal_name"], "Caf\udce9").encode("utf-8", "surrogatepass")
    # Signed in: only a signed-in request reaches the parser.
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
    check(requested(ns, base) == [], "nothing malformed was published")
    for query in ("wait=abc", "wait=0", "wait=61", "wait=5x"):
        code, _, text = call(door + f"/v1/onboardings/{oid}?{query}")
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
        ids.append(onboarding_id(x))
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
    check(requested(ns, x) == [], "nothing published")
    check(ns.sql("SELECT count(*) FROM onboardings WHERE onboarding_id = %s", onboarding_id(x)) == [(0,)],
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

    # 8. Submissions are limited per partner and per client address: past either, 429
    # with Retry-After, and nothing published.
    p = ns.start("intake", LMP_INTAKE_SUBMISSIONS_PER_PARTNER_PER_MIN=2,
                 LMP_INTAKE_SUBMISSIONS_PER_ADDRESS_PER_MIN=3, LMP_KAFKA_GROUP_ID="limit-" + ns.prefix)
    posts = [(NORTH, 202), (NORTH, 202), (NORTH, 429), (EAST, 202), (EAST, 429)]  # the last: the address's 4th
    for k, (partner, want) in enumerate(posts):
        x = example("virtual-core.json", partner_id=partner)
        code, h, text = call(p.http + "/v1/onboardings", "POST", x, tok=partner)
        check(code == want, f"submission {k + 1} of {partner}: {code} {text}")
        if code == 429:
            check(int(h.get("Retry-After", "0")) >= 1 and "too many" in error_of(code, text), f"{code} {h} {text}")
            check(requested(ns, x) == [], "a submission past the limit is not published")
    log("submissions limited per partner and per address: 429 with Retry-After, nothing published")


def signed_in(ns, door, r):
    """No token is 401 and publishes nothing; a body naming another partner is 403 and
    publishes nothing; another partner's onboarding is the same 404 as an unknown one;
    request ids are each partner's own."""
    oid = onboarding_id(r)
    fresh = example("virtual-core.json")
    head, payload, sig = token(NORTH).split(".")
    forged = f"{head}.{payload}.{sig[::-1]}"  # the partner's claims, not the issuer's signature
    for what, hdrs, challenge in [
            ("no token", {}, 'Bearer realm="lmp"'),
            ("Basic credentials", {"Authorization": "Basic bm9yYTp4"}, 'Bearer realm="lmp"'),
            ("a token that is not an access token", {"Authorization": "Bearer not-an-access-token"},
             'Bearer realm="lmp", error="invalid_token"'),
            ("a token the issuer did not sign", {"Authorization": "Bearer " + forged},
             'Bearer realm="lmp", error="invalid_token"')]:
        for method, url, body in (("POST", door + "/v1/onboardings", fresh), ("GET", f"{door}/v1/onboardings/{oid}",
                                                                              None)):
            code, h, text = call(url, method, body, hdrs=hdrs, tok=None)
            check(code == 401 and h.get("WWW-Authenticate") == challenge and error_of(code, text),
                  f"{method} with {what}: {code} {h.get('WWW-Authenticate')} {text}")
            check(oid not in text and r["customer"]["legal_name"] not in text, f"{method} with {what}: {text}")
    check(requested(ns, fresh) == [], "nothing published without a valid token")

    # A body naming another partner: 403, nothing published, nothing recorded.
    for partner in (EAST, "partner-nowhere"):
        posing = dict(fresh, partner_id=partner)
        code, _, text = call(door + "/v1/onboardings", "POST", posing)
        check(code == 403 and "another partner" in error_of(code, text), f"naming {partner}: {code} {text}")
        check(requested(ns, posing) == [] and requested(ns, fresh) == [], f"naming {partner}: published")
    ids = [onboarding_id(p, fresh["request_id"]) for p in (NORTH, EAST, "partner-nowhere")]
    check(ns.sql("SELECT count(*) FROM onboardings WHERE onboarding_id = ANY(%s)", ids) == [(0,)], "recorded")

    # Another partner's onboarding is answered exactly as one that does not exist, a
    # long poll included (it waits as long); its owner still reads it.
    unknown = f"{door}/v1/onboardings/{uuid.uuid4()}"
    code_u, h_u, text_u = call(unknown, tok=EAST)
    code_e, h_e, text_e = call(f"{door}/v1/onboardings/{oid}", tok=EAST)
    same = ("Content-Type", "Content-Length", "Cache-Control", "WWW-Authenticate")
    check(code_e == code_u == 404 and text_e == text_u and all(h_e.get(k) == h_u.get(k) for k in same),
          f"erin on nora's onboarding: {code_e} {h_e} {text_e}; on an unknown one: {code_u} {h_u} {text_u}")
    t0 = time.time()
    code, _, text = call(f"{door}/v1/onboardings/{oid}?wait=2", tok=EAST)
    check(code == 404 and text == text_u and time.time() - t0 >= 1.9,
          f"erin's long poll on nora's onboarding: {code} after {time.time() - t0:.1f} s: {text}")
    check(call(f"{door}/v1/onboardings/{oid}")[0] == 200, "nora reads her own onboarding")

    # A request id is the partner's own: eastwind's same request id is another onboarding.
    theirs = dict(r, partner_id=EAST)
    code, _, text = call(door + "/v1/onboardings", "POST", theirs, tok=EAST)
    check(code == 202 and json.loads(text)["onboarding_id"] == onboarding_id(theirs) != oid, f"{code} {text}")
    sent = requested(ns, theirs)
    check(len(sent) == 1, f"eastwind's request published once: {len(sent)}")
    value = decode(sent[0].value())[1]
    check(value["partner_id"] == EAST and value["submitted_by"] == token_claims(token(EAST))["email"], value)
    log("401 without a valid token, 403 for another partner's body, another's onboarding a 404 like an unknown one")


if __name__ == "__main__":
    sys.exit(run(test_front_door))
