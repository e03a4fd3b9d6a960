"""What the fuzzer is taught beyond docs/openapi.yaml: the request rules JSON Schema
cannot say, which the document names in its descriptions, and short long polls.

A generated body is only dropped here, never changed, so a case meant to break the
schema is never made valid by a hook: each filter drops bodies that break a rule the
schema does not state (a ship_to that names no address, a ref used twice, the
partner named as its own sub-partner), whatever else they do."""
import os

import schemathesis

SELF = {os.environ.get("LMP_ST_PARTNER", "")}
WS = "\t\n\v\f\r "


def _crossing_rules_hold(body):
    if not isinstance(body, dict):
        return True
    customer = body.get("customer")
    if isinstance(customer, dict) and isinstance(customer.get("sub_partner_id"), str):
        if customer["sub_partner_id"].strip(WS) in SELF:
            return False
    d = body.get("deployment")
    if not isinstance(d, dict):
        return True
    addresses = d.get("addresses") if isinstance(d.get("addresses"), list) else []
    refs = [a.get("ref").strip(WS) for a in addresses if isinstance(a, dict) and isinstance(a.get("ref"), str)]
    if len(refs) != len(set(refs)):
        return False
    appliances = d.get("appliances") if isinstance(d.get("appliances"), list) else []
    for a in appliances:
        ship_to = a.get("ship_to") if isinstance(a, dict) else None
        if isinstance(ship_to, str) and ship_to.strip(WS) not in refs + ["partner-default"]:
            return False
    return True


# Case hooks: every phase applies them, the coverage phase included.
@schemathesis.hook("filter_case").apply_to(method="POST", path="/v1/onboardings")
def crossing_rules(ctx, case):
    return _crossing_rules_hold(case.body)


@schemathesis.hook("map_case").apply_to(method="GET", path="/v1/onboardings/{onboarding_id}")
def short_waits(ctx, case):
    """A long poll of at most 2 s: the route's whole range is 1 to 60, and an
    onboarding a generated request names rarely ends within it."""
    wait = case.query.get("wait") if isinstance(case.query, dict) else None
    if os.environ.get("LMP_ST_DEBUG"):
        print(f"short_waits: {case.query!r}", flush=True)
    if isinstance(wait, str) and wait.isascii() and wait.isdigit():
        wait = int(wait)  # the coverage phase writes query values as text
    if isinstance(wait, int) and not isinstance(wait, bool) and 2 < wait <= 60:
        case.query = dict(case.query, wait=2)  # a wait out of range stays as generated: 400
    return case
