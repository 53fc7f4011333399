"""Schemathesis hooks of scripts/test.d/20-api-conformance.sh.

JSON Schema cannot say "unique by a key": a concert whose schedules repeat a
scheduleId is schema-valid (the items differ in date or price) yet the
server refuses it with 400, as docs/openapi.yaml says. Such bodies are left
out of generation; server/tests/hostile_input.rs tests that refusal.

Likewise a reserve's quantity is bounded by the event's perUserLimit, which
the schema cannot know: a generated quantity above 1 (the least limit) is
set to 1, so a valid token's purchase is tried instead of refused with 400;
the limit's own 400 is tested in server/tests/contract_buying.rs.
"""

import schemathesis


def _repeats_a_schedule_id(body):
    if not isinstance(body, dict) or not isinstance(body.get("schedules"), list):
        return False
    ids = [
        s.get("scheduleId")
        for s in body["schedules"]
        if isinstance(s, dict) and isinstance(s.get("scheduleId"), str)
    ]
    return len(ids) != len(set(ids))


@schemathesis.hook
def filter_body(context, body):
    return not _repeats_a_schedule_id(body)


@schemathesis.hook
def filter_case(context, case):
    return not _repeats_a_schedule_id(case.body)


@schemathesis.hook
def map_body(context, body):
    operation = getattr(context, "operation", None)
    if (
        operation is not None
        and operation.path == "/api/v1/tickets/reserve"
        and isinstance(body, dict)
        and type(body.get("quantity")) is int
        and body["quantity"] > 1
    ):
        body = dict(body, quantity=1)
    return body
