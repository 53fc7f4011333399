"""Schemathesis hooks of scripts/test.d/20-api-conformance.sh.

JSON Schema cannot say "unique by a key": a concert whose schedules repeat a
scheduleId is schema-valid (the items differ in date or price) yet the
server refuses it with 400, as docs/openapi.yaml says. Such bodies are left
out of generation; server/tests/hostile_input.rs tests that refusal.

Likewise a reserve's quantity is bounded by the event's perUserLimit, which
the schema cannot know: a generated quantity above 1 (the least limit) is
set to 1, so a valid token's purchase is tried instead of refused with 400;
the limit's own 400 is tested in server/tests/contract_buying.rs.

And a hold needs a schedule and a seat that exist, and a payment a buyer
with points: data the schema cannot know, so a generated hold names a random
scheduleId and seat and the paid path is never reached. The hooks remember
each concert the run created (its schedules, their seat counts and prices),
top up the points of each buyer who enters one (through the API's own
charge), and point a hold on such a concert at one of its schedules and an
existing seat, so the stateful phase goes create -> enter -> hold -> pay
and a payment can complete. The 404s and 402 these bypass are tested in
server/tests/seatmap.rs. `st_paid_path.json` (in the working directory)
counts what was reached: the suite asserts a completed payment.
"""

import json
import random
from urllib.parse import urlsplit

import requests
import schemathesis

# concertId -> [(scheduleId, seatCount, price)] of concerts this run made.
_concerts = {}
_reached = {"holds": 0, "payments": 0}
# Seats chosen reproducibly, as the run's own seed makes the rest.
_seats = random.Random(20261121)


def _base(response):
    url = urlsplit(response.request.url)
    return f"{url.scheme}://{url.netloc}"


def _save_reached():
    with open("st_paid_path.json", "w") as f:
        json.dump(_reached, f)


@schemathesis.hook
def after_call(context, case, response):
    path = case.operation.path
    if path == "/api/v1/admin/concerts" and response.status_code == 201:
        concert = response.json().get("concertId")
        _concerts[concert] = [
            (s["scheduleId"], s.get("seatCount") or 50, s["price"])
            for s in case.body["schedules"]
        ]
    elif (
        path == "/api/v1/queue/enter"
        and response.status_code == 200
        and isinstance(case.body, dict)
        and case.body.get("eventId") in _concerts
    ):
        price = max(p for _, _, p in _concerts[case.body["eventId"]])
        requests.post(
            _base(response) + "/api/v1/points/charge",
            json={"userId": case.body["userId"], "amount": max(price, 1)},
            timeout=10,
        )
    elif path == "/api/v1/concerts/{concertId}/reservations" and response.status_code == 201:
        _reached["holds"] += 1
        _save_reached()
    elif path == "/api/v1/payments" and response.status_code == 200:
        _reached["payments"] += 1
        _save_reached()


@schemathesis.hook
def before_call(context, case, **kwargs):
    if case.operation.path != "/api/v1/concerts/{concertId}/reservations":
        return
    schedules = _concerts.get((case.path_parameters or {}).get("concertId"))
    if not schedules or not isinstance(case.body, dict):
        return
    schedule, seats, _ = _seats.choice(schedules)
    case.body = dict(case.body, scheduleId=schedule, seatNumber=_seats.randint(1, seats))


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
