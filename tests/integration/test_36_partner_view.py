"""The partner's view: GET /v1/partner shows the signed-in partner what it holds, as
allocation and shipping announce it (partner.balance, partner.address) and intake
keeps it, without reading their tables. Each license the partner holds with the users
available for each of the form's counts, the partners that share its license, its
default address; another partner sees its own and nothing of this one. An onboarding
draws the counts down, a reference-data load raises them or changes the address, and
the view follows each; an announcement older than the one kept changes nothing; a
malformed one is dead-lettered with its reason and changes nothing; no token is 401."""
import json
import sys
import urllib.request
import uuid

from harness import (check, example, log, onboarding_id, run, tls_context, token, wait_for)

NORTH, EAST = "partner-northwind", "partner-eastwind"


def view(ns, who=NORTH):
    h = {} if who is None else {"Authorization": "Bearer " + token(who)}
    url = ns.http["intake"] + "/v1/partner"
    req = urllib.request.Request(url, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30, context=tls_context(url)) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def available(v, license):
    return {l["license"]: l["users_available"] for l in v["licenses"]}.get(license)


def settled(ns, what, pred, who=NORTH):
    """The view once pred holds of it."""
    out = {}

    def ok():
        code, v = view(ns, who)
        out["v"] = v
        return code == 200 and pred(v)
    wait_for(what, ok, timeout=60, show=lambda: out.get("v"))
    return out["v"]


def submit(ns, r):
    url = ns.http["intake"] + "/v1/onboardings"
    req = urllib.request.Request(url, data=json.dumps(r).encode(), method="POST",
                                 headers={"Authorization": "Bearer " + token(NORTH),
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=90, context=tls_context(url)) as resp:
        check(resp.status == 202, resp.status)


def test_partner_view(ns):
    ns.start_all()

    # 1. No token: 401, and nothing said about anyone.
    code, body = view(ns, None)
    check(code == 401 and "error" in body, f"no token: {code} {body}")

    # 2. What the reference data gives Northwind, as announced.
    v = settled(ns, "Northwind's licenses announced",
                lambda v: len(v["licenses"]) == 3 and v["default_address"] is not None)
    check(v["partner_id"] == NORTH and v["name"] == "Northwind MSP", v)
    check([l["license"] for l in v["licenses"]] == ["MDR_CORE", "MDR_COMPLETE", "MDR_CLOUD"], v["licenses"])
    check(available(v, "MDR_CORE") == {"tier": 500, "cloud": 400}, v["licenses"])
    check(available(v, "MDR_COMPLETE") == {"tier": 1000, "cloud": 400, "sat": 1000}, v["licenses"])
    check(available(v, "MDR_CLOUD") == {"cloud": 400}, v["licenses"])
    check(v["sub_partners"] == [{"partner_id": EAST, "name": "Eastwind IT"}], v["sub_partners"])
    check(v["default_address"]["city"] == "Bedford" and v["default_address"]["country"] == "CA" and
          v["default_address"]["line2"] is None, v["default_address"])
    check(v["balance_as_of"] and v["address_as_of"], v)

    # 3. Eastwind holds no license and has no address: its view says so, and shows
    # nothing of Northwind's.
    e = settled(ns, "Eastwind's view", lambda v: v["name"] == "Eastwind IT", who=EAST)
    check(e["partner_id"] == EAST and e["licenses"] == [] and e["pools"] == [] and e["sub_partners"] == [] and
          e["default_address"] is None, e)

    # 4. An onboarding draws the users down; the view follows.
    r = example("virtual-core.json")
    submit(ns, r)
    wait_for("the onboarding confirmed", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(r)) == [("confirmed",)], timeout=120)
    tier = r["users"]["tier"]
    settled(ns, "Core's users drawn down", lambda v: available(v, "MDR_CORE") == {"tier": 500 - tier, "cloud": 400})

    # 5. Reference data raises a pool and moves the address: the view follows both.
    code, body = ns.admin_post("allocation", "/v1/admin/load",
                               {"pools": [{"partner_id": NORTH, "product": "MDR_CORE", "total": 600}]})
    check(code == 200, body)
    moved = {"recipient": "Northwind Receiving", "line1": "1 Harbour Rd", "city": "Halifax",
             "postal_code": "B3H 1A1", "country": "CA"}
    code, body = ns.admin_post("shipping", "/v1/admin/load",
                               {"partner_addresses": [{"partner_id": NORTH, "address": moved}]})
    check(code == 200, body)
    v = settled(ns, "the raised pool and the new address",
                lambda v: available(v, "MDR_CORE") == {"tier": 600 - tier, "cloud": 400} and
                v["default_address"]["city"] == "Halifax")
    check(v["default_address"]["region"] is None and v["default_address"]["phone"] is None, v["default_address"])
    log(f"view after the load: {json.dumps(v)[:300]}")

    # 6. An announcement older than the one kept (a replayed or late message) changes
    # nothing; a malformed one is dead-lettered with its reason.
    old = {"partner_id": NORTH, "name": "Stale", "version": 1,
           "pools": [{"product": "MDR_CORE", "total": 1, "available": 1}], "sub_partners": [], "changed_at": 0}
    ns.publish("partner.balance", old, key=NORTH)
    bad = dict(old, version=10 ** 12, name="Forged", pools=[{"product": "MDR_CORE", "total": 5, "available": 9}])
    probe = str(uuid.uuid4())
    ns.publish("partner.balance", bad, key=NORTH, headers={"event_id": probe, "event_type": "partner.balance"})
    bad_address = {"partner_id": NORTH, "version": 10 ** 12, "changed_at": 0,
                   "address": dict(moved, line2=None, region=None, phone=None, country="Canada")}
    probe2 = str(uuid.uuid4())
    ns.publish("partner.address", bad_address, key=NORTH,
               headers={"event_id": probe2, "event_type": "partner.address"})
    def letters():
        out = {}
        for m in ns.consume_all(ns.dead_letters("intake")):
            h = {k: (v or b"").decode(errors="replace") for k, v in (m.headers() or [])}
            out[h.get("event_id")] = h.get("error_message", "")
        return out
    wait_for("intake dead-lettered both malformed ones", lambda: {probe, probe2} <= set(letters()), timeout=60)
    seen = letters()
    check("available users are not between 0 and its total" in seen[probe], seen)
    check("ISO 3166-1 alpha-2" in seen[probe2], seen)
    code, v = view(ns)
    check(code == 200 and v["name"] == "Northwind MSP" and available(v, "MDR_CORE")["tier"] == 600 - tier and
          v["default_address"]["country"] == "CA", f"the stale and the malformed changed the view: {v}")


if __name__ == "__main__":
    sys.exit(run(test_partner_view))
