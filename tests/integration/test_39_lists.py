"""The partner's lists: GET /v1/onboardings (its own, newest first, by status, page
by page with a cursor) and GET /v1/customers (its accounts with license, users per
product and status; released ones only when asked for), another partner's never in
them; malformed queries 400, no token 401; the page's own addresses (/onboardings,
/onboardings/<id>, /customers) serve the page."""
import json
import sys
import urllib.parse
import urllib.request

from harness import check, example, onboarding_id, run, tls_context, token, wait_for

NORTH, EAST = "partner-northwind", "partner-eastwind"


def get(ns, path, who=NORTH):
    url = ns.http["intake"] + path
    h = {} if who is None else {"Authorization": "Bearer " + token(who)}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=h), timeout=30,
                                    context=tls_context(url)) as r:
            body = r.read()
            return r.status, (json.loads(body) if r.headers.get_content_type() == "application/json" else body)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_lists(ns):
    ns.start_all()
    first, second, short = example("virtual-core.json"), example("cloud-only.json"), example("virtual-core.json")
    short["customer"]["legal_name"] += " Short"
    short["users"]["tier"] = 100000
    for r in (first, second, short):
        ns.publish("onboarding.requested", r)
        oid = onboarding_id(r)
        wait_for("final", lambda oid=oid: ns.sql("SELECT status FROM onboardings WHERE onboarding_id = %s", oid)
                 in ([("confirmed",)], [("failed",)]), timeout=120)
    ids = [onboarding_id(r) for r in (first, second, short)]

    # Newest first, two a page.
    code, page1 = get(ns, "/v1/onboardings?limit=2")
    check(code == 200 and [o["onboarding_id"] for o in page1["onboardings"]] == ids[::-1][:2], page1)
    check(page1["next_cursor"], page1)
    o = page1["onboardings"][0]
    check(o["status"] == "failed" and o["license"] == "MDR_CORE" and o["page_url"] == f"/onboardings/{ids[2]}" and
          o["status_url"] == f"/v1/onboardings/{ids[2]}" and o["created_at"].endswith("Z"), o)
    code, page2 = get(ns, "/v1/onboardings?limit=2&cursor=" + urllib.parse.quote(page1["next_cursor"]))
    check(code == 200 and [o["onboarding_id"] for o in page2["onboardings"]] == [ids[0]] and
          page2["next_cursor"] is None, page2)
    code, failed = get(ns, "/v1/onboardings?status=failed")
    check(code == 200 and [o["onboarding_id"] for o in failed["onboardings"]] == [ids[2]], failed)

    # Customers: the two confirmed, with their users; the released one when asked for.
    code, cust = get(ns, "/v1/customers")
    check(code == 200 and [c["onboarding_id"] for c in cust["customers"]] == [ids[1], ids[0]], cust)
    check(cust["customers"][0]["license"] == "MDR_CLOUD" and cust["customers"][0]["status"] == "active" and
          cust["customers"][0]["users"] == [{"product": "MDR_CLOUD", "users": second["users"]["cloud"]}], cust)
    check(cust["customers"][1]["users"] == [{"product": "MDR_CORE", "users": first["users"]["tier"]}], cust)
    code, released = get(ns, "/v1/customers?status=released")
    check(code == 200 and [c["onboarding_id"] for c in released["customers"]] == [ids[2]] and
          released["customers"][0]["users"] == [], released)

    # Another partner's lists hold none of these.
    for path in ("/v1/onboardings", "/v1/customers", "/v1/customers?status=released"):
        code, body = get(ns, path, who=EAST)
        key = "onboardings" if "onboardings" in path else "customers"
        check(code == 200 and body[key] == [] and body["next_cursor"] is None, f"{path} for {EAST}: {body}")

    # Malformed queries, and no token.
    for path in ("/v1/onboardings?status=teleported", "/v1/onboardings?limit=0", "/v1/onboardings?limit=101",
                 "/v1/onboardings?limit=ten", "/v1/onboardings?cursor=abc", "/v1/customers?cursor=1_not-a-uuid",
                 "/v1/onboardings?cursor=" + "9" * 19 + "_" + ids[0], "/v1/customers?status=confirmed",
                 # Encoded characters that would cut a value short or make an argument
                 # of their own once decoded: never read as no cursor, or as a cursor.
                 "/v1/onboardings?cursor=%00", "/v1/onboardings?cursor=%00%F1%8F%BB%AD",
                 "/v1/onboardings?status=failed%26cursor%3D1_" + ids[0], "/v1/customers?cur%3Dsor=1",
                 # Not UTF-8, control characters, oversized, another event's body.
                 "/v1/onboardings?cursor=%FF%FE", "/v1/customers?status=%1B%5B31mreleased",
                 "/v1/onboardings?status=received%0D%0AX-Injected:%201", "/v1/onboardings?cursor=" + "9" * 10000,
                 "/v1/customers?status=" + "r" * 10000,
                 "/v1/onboardings?cursor=" + urllib.parse.quote(json.dumps(example("virtual-core.json")))):
        code, body = get(ns, path)
        check(code == 400 and body.get("error"), f"{path[:80]}: {code} {body}")
    # And the lists behind them answer as before.
    code, again = get(ns, "/v1/onboardings?limit=2")
    check(code == 200 and [o["onboarding_id"] for o in again["onboardings"]] ==
          [o["onboarding_id"] for o in page1["onboardings"]], again)
    for path in ("/v1/onboardings", "/v1/customers"):
        code, _ = get(ns, path, who=None)
        check(code == 401, f"{path} without a token: {code}")

    # The page's own addresses are the page.
    for path in ("/onboardings", f"/onboardings/{ids[0]}", "/customers"):
        code, body = get(ns, path, who=None)
        check(code == 200 and b"<form id=\"onboarding\"" in body, f"{path}: {code}")


if __name__ == "__main__":
    sys.exit(run(test_lists))
