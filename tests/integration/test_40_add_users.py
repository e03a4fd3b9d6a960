"""Users added to an existing customer later: POST /v1/customers/<id>/users (and the
same request on Kafka) checked against the account and its license (422 with every
reason the body breaks, 409 when only the account's license refuses it, another
partner's customer the same 404 as none), drawn all or nothing by
allocation (a shortfall refused and named, nothing drawn), added once however often
the request is repeated, the partner told by mail, and the customer's totals (GET
/v1/customers/<id>, the list) the onboarding's users plus every addition's."""
import json
import sys
import urllib.request
import uuid

from harness import check, decode, example, onboarding_id, run, tls_context, token, wait_for

NORTH, EAST = "partner-northwind", "partner-eastwind"


def call(ns, path, body=None, who=NORTH):
    url = ns.http["intake"] + path
    h = {"Authorization": "Bearer " + token(who)}
    if body is not None:
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), headers=h,
                                 method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=60, context=tls_context(url)) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def onboarded(ns, example_name):
    r = example(example_name)
    ns.publish("onboarding.requested", r)
    oid = onboarding_id(r)
    wait_for("confirmed", lambda: ns.sql("SELECT status FROM onboardings WHERE onboarding_id = %s", oid) ==
             [("confirmed",)], timeout=120)
    return r, ns.sql("SELECT customer_id::text FROM onboardings WHERE onboarding_id = %s", oid)[0][0]


def totals(ns, cid):
    code, c = call(ns, f"/v1/customers/{cid}")
    check(code == 200, f"{code} {c}")
    return {u["product"]: u["users"] for u in c["users"]}, c


def test_add_users(ns):
    ns.start_all()
    core, cid = onboarded(ns, "virtual-core.json")
    cloud, cloud_cid = onboarded(ns, "cloud-only.json")
    tier = core["users"]["tier"]
    check(totals(ns, cid)[0] == {"MDR_CORE": tier}, totals(ns, cid))

    # 1. Added: 202 with where to follow it; the totals grow once allocation drew them.
    rid = str(uuid.uuid4())
    code, a = call(ns, f"/v1/customers/{cid}/users", {"request_id": rid, "users": {"tier": 5, "cloud": 3, "sat": 0}})
    check(code == 202 and a["status"] == "submitted" and a["status_url"] == f"/v1/customers/{cid}", a)
    aid = a["addition_id"]
    wait_for("the users added", lambda: totals(ns, cid)[0] == {"MDR_CORE": tier + 5, "MDR_CLOUD": 3}, timeout=60)
    got = totals(ns, cid)[1]
    check(got["additions"][0]["addition_id"] == aid and got["additions"][0]["status"] == "added" and
          sorted((x["product"], x["users"]) for x in got["additions"][0]["allocations"]) ==
          [("MDR_CLOUD", 3), ("MDR_CORE", 5)], got["additions"])
    pools = {p["product"]: p["allocated"] for p in json.loads(ns.admin_get("allocation", f"/v1/pools/{NORTH}")[1])}
    # The partner is told, once, by mail.
    mails = wait_for("the mail", lambda: ns.mails(aid) or None, timeout=60)
    check(len(mails) == 1 and "Users added" in mails[0]["Subject"] and "5 MDR Core, 3 MDR Cloud" in
          mails[0].get_content(), [m["Subject"] for m in mails])

    # 2. The same request again, by HTTP and on Kafka: answered the same, added once.
    code, again = call(ns, f"/v1/customers/{cid}/users", {"request_id": rid, "users": {"tier": 5, "cloud": 3, "sat": 0}})
    check(code == 202 and again["addition_id"] == aid, again)
    repeat = {"request_id": rid, "partner_id": NORTH, "submitted_by": "nora@northwind.example", "customer_id": cid,
              "users": {"tier": 5, "cloud": 3, "sat": 0}, "submitted_at": 0}
    h = ns.publish("customer.users-requested", repeat, key=aid)
    wait_for("the repeat handled", lambda: ns.sql("SELECT count(*) FROM lmp_inbox WHERE event_id = %s",
                                                  h["event_id"])[0][0] == 1, timeout=60)
    ns.wait_published()
    check(totals(ns, cid)[0] == {"MDR_CORE": tier + 5, "MDR_CLOUD": 3} and len(totals(ns, cid)[1]["additions"]) == 1,
          totals(ns, cid))
    after = {p["product"]: p["allocated"] for p in json.loads(ns.admin_get("allocation", f"/v1/pools/{NORTH}")[1])}
    check(after == pools, f"a repeat drew users again: {pools} -> {after}")

    # The same request id for other users is refused: 409, nothing published.
    code, a = call(ns, f"/v1/customers/{cid}/users", {"request_id": rid, "users": {"tier": 6, "cloud": 3, "sat": 0}})
    check(code == 409 and "request id" in a["error"], f"{code} {a}")

    # 3. A shortfall: refused and named, nothing drawn.
    code, a = call(ns, f"/v1/customers/{cid}/users", {"request_id": str(uuid.uuid4()),
                                                     "users": {"tier": 100000, "cloud": 1, "sat": 0}})
    check(code == 202, a)
    wait_for("the shortfall refused", lambda: totals(ns, cid)[1]["additions"][0]["status"] == "refused", timeout=60)
    reasons = totals(ns, cid)[1]["additions"][0]["reasons"]
    check(reasons[0]["code"] == "INSUFFICIENT_USERS" and "100000 users requested" in reasons[0]["message"], reasons)
    after = {p["product"]: p["allocated"] for p in json.loads(ns.admin_get("allocation", f"/v1/pools/{NORTH}")[1])}
    check(after == pools, f"a refused addition drew users: {pools} -> {after}")
    check(totals(ns, cid)[0] == {"MDR_CORE": tier + 5, "MDR_CLOUD": 3}, totals(ns, cid))

    # 4. The rules, at their fields, and nothing sent: 422 for a body wrong in itself,
    # 409 for one the account does not take (its license), right for another account.
    for body, cust, field, code_, status in (
            ({"tier": 1, "cloud": 0, "sat": 2}, cid, "users.sat", "SAT_REQUIRES_COMPLETE", 409),
            ({"tier": 0, "cloud": 0, "sat": 0}, cid, "users", "NO_USERS", 422),
            ({"tier": 2, "cloud": 0, "sat": 0}, cloud_cid, "users.tier", "TIER_USERS_WITH_CLOUD_LICENSE", 409),
            ({"tier": -1, "cloud": 0, "sat": 0}, cid, "users", "NEGATIVE_COUNT", 422)):
        code, a = call(ns, f"/v1/customers/{cust}/users", {"request_id": str(uuid.uuid4()), "users": body})
        check(code == status and [(x["field"], x["code"]) for x in a["reasons"]] == [(field, code_)],
              f"{body}: {code} {a}")
    code, a = call(ns, f"/v1/customers/{cid}/users", {"request_id": "not-a-uuid", "users": {"tier": 1}})
    check(code == 422 and a["reasons"][0]["code"] == "BAD_REQUEST_ID", a)
    for path, who in ((f"/v1/customers/{cid}/users", EAST), (f"/v1/customers/{uuid.uuid4()}/users", NORTH),
                      ("/v1/customers/not-a-customer/users", NORTH)):
        code, a = call(ns, path, {"request_id": str(uuid.uuid4()), "users": {"tier": 1}}, who=who)
        check(code == 404 and a["error"] == "no such customer", f"{path} as {who}: {code} {a}")
    code, a = call(ns, f"/v1/customers/{cid}", who=EAST)
    check(code == 404, f"another partner's customer: {code} {a}")
    code, a = call(ns, f"/v1/customers/{cid}/users", {"request_id": str(uuid.uuid4()), "users": {"tier": "many"}})
    check(code == 400 and a["error"], a)

    # 5. On Kafka, a request for no account of the partner is rejected on its topic.
    stray = dict(repeat, request_id=str(uuid.uuid4()), customer_id=str(uuid.uuid4()))
    ns.publish("customer.users-requested", stray, key=stray["request_id"])
    rejected = wait_for("the rejection", lambda: [decode(m.value())[1] for m in
                                                  ns.consume_all("customer.users-rejected")] or None, timeout=60)
    check(rejected[0]["reasons"][0]["code"] == "UNKNOWN_CUSTOMER", rejected)
    # Another partner naming this customer is rejected, and its request is not shown
    # on this partner's customer page; an unusable submitter address is rejected too.
    foreign = dict(repeat, request_id=str(uuid.uuid4()), partner_id=EAST)
    bad_mail = dict(repeat, request_id=str(uuid.uuid4()), submitted_by="not-an-address")
    for r in (foreign, bad_mail):
        ns.publish("customer.users-requested", r, key=r["request_id"])
    codes = wait_for("both rejected", lambda: (lambda c: c if len(c) >= 3 else None)(
        [decode(m.value())[1]["reasons"][0]["code"] for m in ns.consume_all("customer.users-rejected")]), timeout=60)
    check(sorted(codes) == ["BAD_EMAIL", "UNKNOWN_CUSTOMER", "UNKNOWN_CUSTOMER"], codes)
    check(all(x["status"] != "rejected" for x in totals(ns, cid)[1]["additions"]),
          f"another partner's request shown on this customer's page: {totals(ns, cid)[1]['additions']}")

    # 6. The list shows the totals too.
    code, lst = call(ns, "/v1/customers")
    row = next(c for c in lst["customers"] if c["customer_id"] == cid)
    check({u["product"]: u["users"] for u in row["users"]} == {"MDR_CORE": tier + 5, "MDR_CLOUD": 3}, row)


if __name__ == "__main__":
    sys.exit(run(test_add_users))
