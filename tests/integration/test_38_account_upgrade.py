"""Customer accounts become per partner and license (intake's migration 006) on a
deployment that has accounts already: none is lost, each takes its onboarding's
license, a released one stays released, and afterwards the same legal name is taken
on another license but refused again on its own."""
import sys

from harness import check, example, onboarding_id, pg_connect, run, wait_for

NORTH = "partner-northwind"


def status(ns, oid):
    rows = ns.sql("SELECT status, COALESCE(reasons->0->>'code', '') FROM onboardings WHERE onboarding_id = %s", oid)
    return rows[0] if rows else None


def test_account_upgrade(ns):
    ns.start_all()
    # Accounts as the previous version kept them: one confirmed, one failed (released).
    kept = example("virtual-core.json")
    short = example("virtual-core.json")
    short["customer"]["legal_name"] = kept["customer"]["legal_name"] + " Holdings"
    short["users"]["tier"] = 100000
    for r in (kept, short):
        ns.publish("onboarding.requested", r)
    wait_for("both final", lambda: status(ns, onboarding_id(kept)) == ("confirmed", "") and
             status(ns, onboarding_id(short)) is not None and status(ns, onboarding_id(short))[0] == "failed",
             timeout=120)
    before = ns.sql("SELECT customer_id, partner_id, account_name, onboarding_id, status FROM customer_accounts "
                    "ORDER BY customer_id")
    check(len(before) == 2, before)

    # Back to the schema before migration 006, intake stopped: the ledger forgets it.
    intake = next(p for p in ns.procs if p.service == "intake")
    intake.terminate()
    check(intake.wait(30) == 0, "intake drained")
    with pg_connect(ns.dbname("intake")) as c:
        c.execute("DELETE FROM lmp_schema_migrations WHERE name LIKE %s", ("%006_accounts_per_license.sql",))
        c.execute("DROP INDEX customer_accounts_name")
        c.execute("ALTER TABLE customer_accounts DROP COLUMN license")
        c.execute('CREATE UNIQUE INDEX customer_accounts_name ON customer_accounts '
                  '(partner_id, lower(account_name COLLATE "und-x-icu")) WHERE status <> \'released\'')

    # The new version starts and migrates.
    ns.start("intake")
    after = ns.sql("SELECT customer_id, partner_id, account_name, onboarding_id, status FROM customer_accounts "
                   "ORDER BY customer_id")
    check(after == before, f"accounts changed in the migration: {before} -> {after}")
    licenses = ns.sql("SELECT DISTINCT license FROM customer_accounts")
    check(licenses == [("MDR_CORE",)], licenses)

    # The same name: on MDR Cloud a new account; on MDR Core refused as before.
    cloud = example("cloud-only.json")
    cloud["customer"]["legal_name"] = kept["customer"]["legal_name"].upper()
    again = example("virtual-core.json")
    again["customer"]["legal_name"] = kept["customer"]["legal_name"]
    for r in (cloud, again):
        ns.publish("onboarding.requested", r)
    wait_for("the cloud account confirmed", lambda: status(ns, onboarding_id(cloud)) == ("confirmed", ""),
             timeout=120)
    wait_for("the second core account refused", lambda: status(ns, onboarding_id(again)) ==
             ("rejected", "LEGAL_NAME_TAKEN"), timeout=60)
    check(ns.sql("SELECT license, status FROM customer_accounts WHERE onboarding_id = %s", onboarding_id(cloud)) ==
          [("MDR_CLOUD", "active")], "the cloud account")

if __name__ == "__main__":
    sys.exit(run(test_account_upgrade))
