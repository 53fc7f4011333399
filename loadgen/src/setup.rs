//! Set-up through the contract's admin API: the run's event on every host
//! (a shared stack answers ALREADY_EXISTS after the first, which is fine),
//! and a few reservations for the reads of `browse` to find.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// What set-up made, per host index.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// The run's event, on every host.
    pub event_id: String,
    /// Reservation ids readable on each host.
    pub reservations: Vec<Vec<String>>,
    /// The run's concert (`hold_and_pay` only).
    pub concert: Option<ConcertPlan>,
}

/// A concert made for `hold_and_pay`: enough seats for every planned
/// purchase, spread over schedules.
#[derive(Debug, Clone, Default)]
pub struct ConcertPlan {
    pub concert_id: String,
    pub schedules: Vec<String>,
    pub seats_per_schedule: u32,
    pub price: u64,
    /// Share of iterations that first try a hot seat (`--hot-seat-share`).
    pub hot_share: f64,
}

/// How many seats are hot: seats 1..=HOT_SEATS of the first schedule.
pub const HOT_SEATS: u32 = 10;

impl ConcertPlan {
    /// Schedules of 200 seats (up to 1000 when 100 schedules are not
    /// enough), one seat per planned purchase.
    pub fn sized(concert_id: String, seats: u64) -> Self {
        let per = seats.div_ceil(100).clamp(200, 1000) as u32;
        let count = seats.div_ceil(u64::from(per)).clamp(1, 100);
        ConcertPlan {
            concert_id,
            schedules: (0..count).map(|i| format!("s{i}")).collect(),
            seats_per_schedule: per,
            price: 100,
            hot_share: 0.0,
        }
    }

    pub fn seats(&self) -> u64 {
        self.schedules.len() as u64 * u64::from(self.seats_per_schedule)
    }
}

impl Prepared {
    pub fn reservations(&self, host: usize) -> &[String] {
        self.reservations.get(host).map_or(&[], Vec::as_slice)
    }
}

/// Reservations made per host for `browse` to read.
pub const SAMPLE_RESERVATIONS: u64 = 20;

pub struct Admin {
    client: reqwest::Client,
    token: String,
}

impl Admin {
    pub fn new(token: &str) -> anyhow::Result<Self> {
        Ok(Admin {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            token: token.to_owned(),
        })
    }

    async fn post(
        &self,
        url: String,
        body: Value,
        token: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.client.post(&url).json(&body);
        if let Some(t) = token {
            request = request.header("X-Queue-Token", t);
        }
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn get(&self, url: String, token: Option<&str>) -> anyhow::Result<(u16, Value)> {
        let mut request = self.client.get(&url);
        if let Some(t) = token {
            request = request.header("X-Queue-Token", t);
        }
        let response = request.send().await.with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// Waits until `host` answers its health check.
    pub async fn wait_ready(&self, host: &str, deadline: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + deadline;
        loop {
            if let Ok((200, _)) = self.get(format!("{host}/actuator/health"), None).await {
                return Ok(());
            }
            if Instant::now() > until {
                bail!("{host} not healthy within {deadline:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// POSTs `body` to `path` on every host. On a shared stack every host
    /// after the first answers ALREADY_EXISTS, which is fine; `what` names
    /// the thing in errors.
    async fn create_everywhere(
        &self,
        hosts: &[String],
        path: &str,
        body: &Value,
        what: &str,
    ) -> anyhow::Result<()> {
        for host in hosts {
            match self
                .post(format!("{host}{path}"), body.clone(), None)
                .await?
            {
                (201, _) => {}
                (409, b) if b["error"] == "ALREADY_EXISTS" => {}
                (status, b) => bail!("creating {what} on {host}: {status} {b}"),
            }
        }
        Ok(())
    }

    /// Creates the event on every host.
    pub async fn create_event(
        &self,
        hosts: &[String],
        event_id: &str,
        stock: u64,
        active_capacity: u32,
    ) -> anyhow::Result<()> {
        let body = json!({
            "eventId": event_id,
            "name": "loadgen",
            "stock": stock,
            "perUserLimit": 1,
            "activeCapacity": active_capacity,
        });
        self.create_everywhere(
            hosts,
            "/api/v1/admin/events",
            &body,
            &format!("event {event_id}"),
        )
        .await
    }

    /// Creates the concert on every host.
    pub async fn create_concert(
        &self,
        hosts: &[String],
        plan: &ConcertPlan,
        active_capacity: u32,
    ) -> anyhow::Result<()> {
        let schedules: Vec<Value> = plan
            .schedules
            .iter()
            .map(|id| {
                json!({"scheduleId": id, "date": "2026-12-24",
                       "seatCount": plan.seats_per_schedule, "price": plan.price})
            })
            .collect();
        let body = json!({
            "concertId": plan.concert_id,
            "name": "loadgen",
            "activeCapacity": active_capacity,
            "schedules": schedules,
        });
        self.create_everywhere(
            hosts,
            "/api/v1/admin/concerts",
            &body,
            &format!("concert {}", plan.concert_id),
        )
        .await
    }

    /// One purchase outside the measurement (for `browse`'s reads).
    pub async fn purchase(
        &self,
        host: &str,
        event_id: &str,
        user_id: &str,
    ) -> anyhow::Result<String> {
        let (status, entered) = self
            .post(
                format!("{host}/api/v1/queue/enter"),
                json!({"eventId": event_id, "userId": user_id}),
                None,
            )
            .await?;
        let token = entered["token"]
            .as_str()
            .with_context(|| format!("enter answered {status} {entered}"))?
            .to_owned();
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, s) = self
                .get(format!("{host}/api/v1/queue/status"), Some(&token))
                .await?;
            match s["status"].as_str() {
                Some("ACTIVE") => break,
                Some("WAITING") if Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => bail!("set-up buyer {user_id} not admitted: {other:?}"),
            }
        }
        let (status, reserved) = self
            .post(
                format!("{host}/api/v1/tickets/reserve"),
                json!({"eventId": event_id, "quantity": 1}),
                Some(&token),
            )
            .await?;
        reserved["reservationId"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("set-up reserve answered {status} {reserved}"))
    }

    /// A counter of the target's `/metrics` (summed over its label sets that
    /// contain every one of `labels`).
    pub async fn metric(&self, host: &str, name: &str, labels: &[&str]) -> anyhow::Result<f64> {
        let text = self
            .client
            .get(format!("{host}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        Ok(sum_metric(&text, name, labels))
    }
}

/// Sums the samples of `name` whose label set contains every `labels`
/// entry (e.g. `result="ok"`).
pub fn sum_metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((m, r)) => (m, r),
                None => (series, ""),
            };
            (metric == name && labels.iter().all(|want| rest.contains(want)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// Prepares a run: the event (with `stock`) everywhere, and for the
/// scenarios that read reservations, a few of them per host.
pub async fn prepare(
    admin: &Admin,
    hosts: &[String],
    (run_id, users): (&str, &str),
    stock: u64,
    active_capacity: u32,
    with_reservations: bool,
    concert_seats: Option<u64>,
) -> anyhow::Result<Prepared> {
    let event_id = format!("lg-{run_id}");
    let extra = if with_reservations {
        SAMPLE_RESERVATIONS * hosts.len() as u64
    } else {
        0
    };
    admin
        .create_event(
            hosts,
            &event_id,
            (stock + extra).min(10_000_000),
            active_capacity,
        )
        .await?;
    let mut reservations = Vec::with_capacity(hosts.len());
    for (h, host) in hosts.iter().enumerate() {
        let mut ids = Vec::new();
        if with_reservations {
            for i in 0..SAMPLE_RESERVATIONS {
                ids.push(
                    admin
                        .purchase(host, &event_id, &format!("setup-{users}-{h}-{i}"))
                        .await?,
                );
            }
        }
        reservations.push(ids);
    }
    let concert = match concert_seats {
        Some(seats) => {
            let plan = ConcertPlan::sized(format!("lgc-{run_id}"), seats);
            admin.create_concert(hosts, &plan, active_capacity).await?;
            Some(plan)
        }
        None => None,
    };
    Ok(Prepared {
        event_id,
        reservations,
        concert,
    })
}

#[cfg(test)]
mod tests {
    use super::ConcertPlan;

    #[test]
    fn a_concert_has_a_seat_for_every_planned_purchase() {
        for seats in [1, 150, 4_900, 20_000, 20_001, 99_999] {
            let plan = ConcertPlan::sized("c".into(), seats);
            assert!(plan.seats() >= seats, "{seats}: {plan:?}");
            assert!((200..=1000).contains(&plan.seats_per_schedule));
            assert!((1..=100).contains(&plan.schedules.len()));
        }
        // Beyond 100 x 1000 seats the plan is as large as the contract allows.
        assert_eq!(ConcertPlan::sized("c".into(), 500_000).seats(), 100_000);
    }
}
