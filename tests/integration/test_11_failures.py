"""Onboardings that cannot complete leave nothing behind: a breach is rejected with
nothing allocated; a shortfall fails at allocation naming product, requested and
available; an appliance out of stock after allocation returns the pool exactly to
where it was; unknown and non-sharing sub-partners are refused alike; each partner is told."""
import sys

from harness import check, decode, example, onboarding_id, run, wait_for


def outcome(ns, oid):
    rows = ns.sql("SELECT status, reasons FROM onboardings WHERE onboarding_id = %s", oid)
    return rows[0] if rows and rows[0][0] in ("rejected", "failed", "confirmed") else None


def pools(ns):
    return dict(ns.sql("SELECT partner_id || '/' || product, allocated FROM pools", service="allocation"))


def test_failures(ns):
    # intake's catalogue names a SKU of which fulfilment will hold a single unit.
    ns.start_all(LMP_INTAKE_APPLIANCE_SKUS="NS-100,NS-500,NS-1000,NS-2000")
    code, body = ns.admin_post("appliance-fulfilment", "/v1/admin/load",
                                 {"skus": [{"sku": "NS-2000", "description": "scarce"}],
                            "inventory": [{"sku": "NS-2000", "serials": ["SCARCE-1"]}]})
    check(code == 200, body)
    before = pools(ns)

    breach = example("virtual-core.json", breach_or_incident=True)
    short = example("virtual-core.json", partner_id="partner-southwind")
    short["users"]["tier"] = 51
    short["submitted_by"] = "ops@southwind.example.com"
    stock = example("physical-complete.json")
    stock["deployment"]["appliances"][1]["sku"] = "NS-2000"
    stock["deployment"]["appliances"][2]["sku"] = "NS-2000"
    unknown_sub = example("virtual-core.json")
    unknown_sub["customer"]["sub_partner_id"] = "partner-nowhere"
    not_sharing = example("virtual-core.json")
    not_sharing["customer"]["sub_partner_id"] = "partner-southwind"
    cases = [breach, short, stock, unknown_sub, not_sharing]
    for r in cases:
        ns.publish("onboarding.requested", r)

    got = {onboarding_id(r): wait_for("an outcome", lambda r=r: outcome(ns, onboarding_id(r)), timeout=60)
           for r in cases}
    st, reasons = got[onboarding_id(breach)]
    check(st == "rejected" and reasons[0]["code"] == "BREACH_OR_INCIDENT", got[onboarding_id(breach)])
    check(ns.sql("SELECT count(*) FROM onboardings WHERE onboarding_id = %s", onboarding_id(breach),
                 service="allocation")[0][0] == 0, "a rejected request never reaches allocation")

    st, reasons = got[onboarding_id(short)]
    check(st == "failed" and reasons[0]["code"] == "INSUFFICIENT_USERS", got[onboarding_id(short)])
    check("MDR Core: 51 users requested, 50 available" in reasons[0]["message"], reasons[0]["message"])

    st, reasons = got[onboarding_id(stock)]
    check(st == "failed" and reasons[0]["code"] == "OUT_OF_STOCK", got[onboarding_id(stock)])
    check("NS-2000" in reasons[0]["message"], reasons[0]["message"])
    # At the model of the appliance that found none left (the second NS-2000: the
    # first took the only unit), where the page shows it.
    scarce = 2
    check(reasons[0]["field"] == f"deployment.appliances[{scarce}].sku" and
          f"appliance {scarce + 1}." in reasons[0]["message"], reasons[0])

    # A sub-partner that does not exist is answered as one that does not share the
    # license: the requesting partner learns nothing of which other partners exist.
    (unknown,), (sharing,) = got[onboarding_id(unknown_sub)][1], got[onboarding_id(not_sharing)][1]
    check(unknown["code"] == sharing["code"] == "SUB_PARTNER_NOT_SHARING" and
          unknown["field"] == sharing["field"] == "customer.sub_partner_id", (unknown, sharing))
    check(unknown["message"].replace("partner-nowhere", "X") == sharing["message"].replace("partner-southwind", "X"),
          f"the two refusals differ beyond the id: {unknown['message']!r} {sharing['message']!r}")

    # Compensation: the out-of-stock onboarding's users went back, exactly.
    wait_for("allocation released", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(stock),
        service="allocation") == [("released",)])
    check(pools(ns) == before, f"pools after: {pools(ns)}, before: {before}")
    check(ns.sql("SELECT count(*) FROM units WHERE status = 'reserved'", service="appliance-fulfilment")[0][0] == 0,
          "no unit stays reserved")
    scarce_unit = ns.sql("SELECT status, onboarding_id, reserved_at FROM units WHERE serial = 'SCARCE-1'",
                         service="appliance-fulfilment")
    check(scarce_unit == [("available", None, None)],
          f"the one scarce unit, reserved before the shortfall, is back as it was: {scarce_unit}")

    # Each failed onboarding's partner is told, once, with the reasons.
    for r in (short, stock, unknown_sub, not_sharing):
        mails = wait_for("a failure notice", lambda r=r: ns.mails(onboarding_id(r)) or None)
        check(len(mails) == 1 and mails[0]["To"].addresses[0].addr_spec == r["submitted_by"], mails)
        check("not completed" in mails[0]["Subject"], mails[0]["Subject"])
    check(ns.mails(onboarding_id(breach)) == [], "a rejection by intake sends no mail")
    failed = ns.consume("onboarding.failed", 4)
    stages = sorted(decode(m.value())[1]["stage"] for m in failed)
    check(stages == ["allocation", "allocation", "allocation", "appliance-fulfilment"], stages)


if __name__ == "__main__":
    sys.exit(run(test_failures))
