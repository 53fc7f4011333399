//! Prometheus metrics: request latency per route, reservation outcomes, and
//! per-event gauges read from the backend at scrape time.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::model::EventGauges;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: String,
}

/// Seconds, 50 us .. 5 s.
pub fn latency_histogram() -> Histogram {
    // 50 us .. 5 s: the server answers in microseconds, a loaded one in ms.
    Histogram::new([
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        0.5, 1.0, 2.5, 5.0,
    ])
}

pub struct Metrics {
    pub(crate) registry: Registry,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    requests: Family<RequestLabels, Counter>,
    reservations: Family<ResultLabels, Counter>,
    holds: Family<ResultLabels, Counter>,
    payments: Family<ResultLabels, Counter>,
    active: Family<EventLabels, Gauge>,
    waiting: Family<EventLabels, Gauge>,
    stock_remaining: Family<EventLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let requests = Family::<RequestLabels, Counter>::default();
        let reservations = Family::<ResultLabels, Counter>::default();
        let holds = Family::<ResultLabels, Counter>::default();
        let payments = Family::<ResultLabels, Counter>::default();
        let active = Family::<EventLabels, Gauge>::default();
        let waiting = Family::<EventLabels, Gauge>::default();
        let stock_remaining = Family::<EventLabels, Gauge>::default();
        registry.register(
            "http_request_duration_seconds",
            "Time to response headers, per route",
            latency.clone(),
        );
        registry.register(
            "http_requests",
            "Requests served, per route and status",
            requests.clone(),
        );
        registry.register(
            "ticket_reservation",
            "Reserve attempts by result",
            reservations.clone(),
        );
        // Success rates are derived from these (deploy/prometheus/rules.yml):
        // result is "ok" or the contract's error code.
        registry.register(
            "seat_hold",
            "Seat hold attempts by result (ok or the error code)",
            holds.clone(),
        );
        registry.register(
            "payment",
            "Payment attempts by result (ok or the error code)",
            payments.clone(),
        );
        registry.register(
            "queue_active_users",
            "Users ACTIVE, per event",
            active.clone(),
        );
        registry.register(
            "queue_waiting_users",
            "Users WAITING, per event",
            waiting.clone(),
        );
        registry.register(
            "redis_stock_remaining",
            "Items left, per event (name kept from the original design, for every backend)",
            stock_remaining.clone(),
        );
        Metrics {
            registry,
            latency,
            requests,
            reservations,
            holds,
            payments,
            active,
            waiting,
            stock_remaining,
        }
    }

    pub fn observe_request(&self, route: &'static str, status: u16, elapsed: Duration) {
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }

    pub fn observe_reservation(&self, result: &'static str) {
        self.reservations
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn observe_hold<T>(&self, outcome: &crate::error::Result<T>) {
        self.holds
            .get_or_create(&ResultLabels {
                result: result_of(outcome),
            })
            .inc();
    }

    pub fn observe_payment<T>(&self, outcome: &crate::error::Result<T>) {
        self.payments
            .get_or_create(&ResultLabels {
                result: result_of(outcome),
            })
            .inc();
    }

    /// Renders the text exposition with the gauges set from `events`.
    pub fn render(&self, events: &[EventGauges]) -> String {
        for e in events {
            let labels = EventLabels {
                event: e.event_id.clone(),
            };
            self.active.get_or_create(&labels).set(to_i64(e.active));
            self.waiting.get_or_create(&labels).set(to_i64(e.waiting));
            self.stock_remaining
                .get_or_create(&labels)
                .set(to_i64(e.remaining));
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

fn result_of<T>(outcome: &crate::error::Result<T>) -> &'static str {
    match outcome {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
