"""The daemon once named fulfilment is appliance-fulfilment; an existing deployment
moves to the new name without redoing or skipping work: the old daemon drains, its
database is renamed, lmpctl copies its group's offsets to the new group, and the
renamed daemon goes on from there (README, "Renaming fulfilment")."""
import re
import sys

from harness import SERVICES, check, create_database, example, http_get, onboarding_id, pg_connect, run, wait_for


def metric(url, name):
    code, text = http_get(url + "/metrics")
    m = re.search(rf'^{name}{{service="[^"]+"}} (\d+)', text, re.M)
    return int(m.group(1)) if m else None


def test_rename_upgrade(ns):
    old_group, old_db = "lmp-fulfilment-" + ns.prefix, ns.db + "_fulfilment"
    new_db = ns.dbname("appliance-fulfilment")
    with pg_connect("postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE "{new_db}"')
        create_database(c, old_db, "appliance-fulfilment")
    for service in SERVICES:
        if service != "appliance-fulfilment":
            ns.start(service)
    # The deployment as it was: the old group and the old database.
    old = ns.start("appliance-fulfilment", LMP_KAFKA_GROUP_ID=old_group, LMP_PG_DATABASE=old_db)
    ns.load_reference_data()
    first = example("physical-complete.json")
    ns.publish("onboarding.requested", first)
    wait_for("confirmed under the old names", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(first)) == [("confirmed",)],
        timeout=90)
    wait_for("the old group caught up", lambda: ns.group_lag(old_group, "onboarding.users-allocated") == 0)

    # The upgrade, as the README says.
    old.terminate()
    check(old.wait(30) == 0, "the old daemon drained")
    with pg_connect("postgres", autocommit=True) as c:
        c.execute(f'ALTER DATABASE "{old_db}" RENAME TO "{new_db}"')
    new_group = "lmp-appliance-fulfilment-" + ns.prefix
    out = ns.lmpctl("group", "copy", old_group, new_group, check_rc=False, timeout=60)
    check(out.returncode == 0 and "copied" in out.stdout, f"group copy: {out.stdout} {out.stderr}")
    new = ns.start("appliance-fulfilment", LMP_KAFKA_GROUP_ID=new_group)

    second = example("physical-complete.json")
    ns.publish("onboarding.requested", second)
    wait_for("confirmed under the new names", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(second)) == [("confirmed",)],
        timeout=90)
    # Nothing read twice (no duplicate skipped) and nothing skipped: both onboardings'
    # units are reserved in the renamed database.
    check(metric(new.http, "lmp_duplicates_total") == 0, "the new group started where the old one stopped")
    units = dict(ns.sql("SELECT onboarding_id, count(*) FROM units WHERE status = 'reserved' GROUP BY 1",
                        service="appliance-fulfilment"))
    check(units == {onboarding_id(first): 3, onboarding_id(second): 3}, units)


if __name__ == "__main__":
    sys.exit(run(test_rename_upgrade))
