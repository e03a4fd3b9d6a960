"""What the fuzzer is taught beyond docs/openapi.yaml: the request rules JSON Schema
cannot say, which the document names in its descriptions, and short long polls.

A case meant to fit the schema is made to keep those rules too (each appliance's
ship_to is partner-default or one of the request's addresses, the refs are unique,
the sub-partner is not the partner itself), so it exercises the flow instead of
being refused. A case meant to break the schema is never changed, only dropped when
it also breaks one of those rules: a hook never turns it into a valid one."""
import copy
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


def _negative(case):
    meta = getattr(case, "_meta", None)
    return meta is not None and meta.generation.mode.is_negative


def _kept(body):
    """A copy of a body that fits the schema, made to keep the crossing rules."""
    body = copy.deepcopy(body)
    customer = body.get("customer")
    if isinstance(customer, dict) and isinstance(customer.get("sub_partner_id"), str) and \
            customer["sub_partner_id"].strip(WS) in SELF:
        customer["sub_partner_id"] = None
    d = body.get("deployment")
    if not isinstance(d, dict):
        return body
    addresses = [a for a in d.get("addresses") or [] if isinstance(a, dict)]
    for i, a in enumerate(addresses):
        a["ref"] = f"site-{i}"
    for a in d.get("appliances") or []:
        if isinstance(a, dict) and isinstance(a.get("ship_to"), str) and \
                a["ship_to"].strip(WS) != "partner-default":
            a["ship_to"] = "site-0" if addresses else "partner-default"
    return body


# Case hooks: every phase applies them, the coverage phase included.
@schemathesis.hook("filter_case").apply_to(method="POST", path="/v1/onboardings")
def crossing_rules(ctx, case):
    return not _negative(case) or _crossing_rules_hold(case.body)


@schemathesis.hook("map_case").apply_to(method="POST", path="/v1/onboardings")
def crossing_rules_kept(ctx, case):
    if not _negative(case) and isinstance(case.body, dict):
        case.body = _kept(case.body)
    return case


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
