//! The race, where over-selling would show: N buyers enter, wait until
//! ACTIVE, are released at once by a barrier, and each reserves Q items of
//! S.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Barrier;

use super::{create_event, enter_active, Watch};
use crate::client::{Call, Client};
use crate::nemesis::actions::Nemesis;
use crate::nemesis::persist::{self, Plan};
use crate::progress::Progress;
use crate::shard::{self, Part};
use crate::RunError;

#[derive(Debug, Clone, Copy)]
pub struct RaceSpec {
    pub buyers: usize,
    pub stock: u64,
    pub quantity: u32,
}

impl RaceSpec {
    /// Buyers that must succeed: as many as the stock covers.
    pub fn expected_ok(&self) -> usize {
        self.buyers
            .min((self.stock / u64::from(self.quantity)) as usize)
    }

    pub fn label(&self) -> String {
        format!(
            "{} buyers / {} items x{}",
            self.buyers, self.stock, self.quantity
        )
    }
}

/// What became of an operation whose outcome was unknown (`info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The target's state shows it happened (the token is DONE).
    Happened,
    /// The target's state shows it did not (the token is still ACTIVE).
    DidNotHappen,
    /// Still unknown.
    Unresolved(String),
}

#[derive(Debug, Clone)]
pub struct Buyer {
    pub user: String,
    pub token: Option<String>,
    /// Why the buyer never got to reserve (not admitted, enter refused).
    pub stuck: Option<String>,
    pub reserve: Option<Call>,
    pub resolution: Option<Resolution>,
}

#[derive(Debug, Clone)]
pub struct TicketRead {
    pub reservation_id: String,
    pub user: String,
    pub quantity: u32,
    /// The last body read, if any read succeeded.
    pub body: Option<Value>,
    /// When it was first seen CONFIRMED (ns), if within the deadline.
    pub confirmed_at: Option<u64>,
    /// The last failed read, if reads failed.
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RaceRun {
    pub spec: RaceSpec,
    pub run: usize,
    pub event_id: String,
    pub buyers: Vec<Buyer>,
    pub event_after: Option<Value>,
    pub tickets: Vec<TicketRead>,
    /// When the barrier released the buyers (ns).
    pub released_at: u64,
}

// Each argument is one of the run's settings; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: &Client,
    spec: RaceSpec,
    run: usize,
    event_id: String,
    watch: Watch,
    confirm_deadline: Duration,
    progress: &Progress,
    part: Option<Part>,
    plan: Plan,
    nemesis: Option<&Nemesis>,
) -> Result<RaceRun, RunError> {
    // Every shard notes the same scenario (the whole race's buyers): the
    // merged history keeps one note, which starts the race's segment.
    client.history.note(
        "scenario",
        json!({"scenario": "race", "run": run, "eventId": event_id, "buyers": spec.buyers,
               "stock": spec.stock, "quantity": spec.quantity}),
    );
    match part {
        // The event is shard 0's to create; the others wait until it is.
        Some(p) if p.shard.index != 0 => {
            shard::wait_for_event(client, &event_id, Duration::from_secs(60)).await?
        }
        _ => {
            create_event(
                client,
                json!({
                    "eventId": event_id,
                    "name": format!("verify race: {}", spec.label()),
                    "stock": spec.stock,
                    "perUserLimit": spec.quantity,
                    // Everyone is admitted at once: the race is for stock, not places.
                    "activeCapacity": spec.buyers,
                    "activeTtlSeconds": 600,
                }),
            )
            .await?
        }
    }
    let mine: Vec<usize> = (0..spec.buyers)
        .filter(|&i| part.is_none_or(|p| p.shard.runs(i)))
        .collect();
    let start_at = part.and_then(|p| p.start_at);

    progress.step(format!(
        "race {}: {} entering and waiting for ACTIVE",
        run,
        spec.label()
    ));
    let barrier = Arc::new(Barrier::new(mine.len()));
    let released = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // The nemesis' schedule starts at the release.
    let (release_tx, mut release_rx) = tokio::sync::watch::channel(0u64);
    let mut tasks = Vec::with_capacity(mine.len());
    for i in mine {
        let client = client.clone();
        let barrier = barrier.clone();
        let released = released.clone();
        let release_tx = release_tx.clone();
        let event_id = event_id.clone();
        tasks.push(tokio::spawn(async move {
            let user = format!("buyer-{i}");
            let mut buyer = Buyer {
                user: user.clone(),
                token: None,
                stuck: None,
                reserve: None,
                resolution: None,
            };
            match enter_active(&client, &user, &event_id, watch).await {
                Ok(token) => buyer.token = Some(token),
                Err(e) => {
                    buyer.token = e.token;
                    buyer.stuck = Some(e.why);
                }
            }
            // Everyone reaches the barrier, stuck or not, so nobody waits forever.
            let leader = barrier.wait().await.is_leader();
            // Shards on several machines release together at --start-at.
            if let Some(at) = start_at {
                shard::wait_until(at).await;
            }
            if leader {
                let at = client.history.note("release", json!({}));
                released.store(at, std::sync::atomic::Ordering::Relaxed);
                let _ = release_tx.send(at);
            }
            drop(release_tx);
            if let (None, Some(token)) = (&buyer.stuck, &buyer.token) {
                let attempts = persist::reserve(
                    &client,
                    plan,
                    tokio::time::Instant::now(),
                    i,
                    spec.buyers,
                    &user,
                    token,
                    &event_id,
                    spec.quantity,
                )
                .await;
                buyer.reserve = persist::effective(&attempts).cloned();
            }
            buyer
        }));
    }
    drop(release_tx);
    let collect = async {
        let mut buyers = Vec::with_capacity(tasks.len());
        for t in tasks {
            buyers.push(
                t.await
                    .map_err(|e| RunError::Other(format!("buyer task panicked: {e}")))?,
            );
        }
        Ok::<_, RunError>(buyers)
    };
    let faults = async {
        if let Some(nemesis) = nemesis {
            // No release (every buyer task ended without one): no faults.
            if let Ok(at) = release_rx.wait_for(|at| *at != 0).await.map(|at| *at) {
                nemesis.run(&client.history, at).await;
            }
        }
    };
    let (buyers, ()) = tokio::join!(collect, faults);
    let mut buyers = buyers?;

    progress.step(format!(
        "race {}: resolving unknown outcomes and reading state",
        run
    ));
    // Resolved together, within one deadline: under a nemesis a target
    // that never comes back must not cost the deadline once per buyer.
    let unknown: Vec<usize> = (0..buyers.len())
        .filter(|&i| {
            buyers[i]
                .reserve
                .as_ref()
                .is_some_and(|c| c.reply.kind() == crate::history::OpKind::Info)
        })
        .collect();
    let until = tokio::time::Instant::now() + plan.retry_for.unwrap_or_default();
    let resolved =
        futures_util::future::join_all(unknown.iter().map(|&i| resolve(client, &buyers[i], until)))
            .await;
    for (i, resolution) in unknown.into_iter().zip(resolved) {
        buyers[i].resolution = Some(resolution);
    }
    let event_after = {
        let call = client.event("checker", &event_id).await;
        call.reply
            .is_success()
            .then(|| call.reply.body().cloned())
            .flatten()
    };

    progress.step(format!(
        "race {}: waiting for reservations to be CONFIRMED",
        run
    ));
    let mut reads = Vec::new();
    for buyer in &buyers {
        if let Some(id) = buyer
            .reserve
            .as_ref()
            .filter(|c| c.reply.is_success())
            .and_then(|c| c.reply.str_field("reservationId"))
        {
            let client = client.clone();
            let (id, user) = (id.to_owned(), buyer.user.clone());
            reads.push(tokio::spawn(read_until_confirmed(
                client,
                id,
                user,
                spec.quantity,
                confirm_deadline,
            )));
        }
    }
    let mut tickets = Vec::with_capacity(reads.len());
    for r in reads {
        tickets.push(
            r.await
                .map_err(|e| RunError::Other(format!("reader panicked: {e}")))?,
        );
    }

    Ok(RaceRun {
        spec,
        run,
        event_id,
        buyers,
        event_after,
        tickets,
        released_at: released.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// Resolves an unknown reserve from the target's state: a used token (DONE)
/// means the purchase happened, a still ACTIVE one that it did not. Under a
/// nemesis the read is repeated, for the recovery deadline at most, while
/// it gets no definitive answer, until `until`.
async fn resolve(client: &Client, buyer: &Buyer, until: tokio::time::Instant) -> Resolution {
    let Some(token) = &buyer.token else {
        return Resolution::Unresolved("no token".into());
    };
    let mut call = client.status(&buyer.user, token).await;
    while call.reply.kind() == crate::history::OpKind::Info && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        call = client.status(&buyer.user, token).await;
    }
    match call.reply.str_field("status") {
        Some("DONE") => Resolution::Happened,
        Some("ACTIVE") => Resolution::DidNotHappen,
        Some(other) => Resolution::Unresolved(format!("token is {other}")),
        None => Resolution::Unresolved(format!("status answered {}", call.reply.short())),
    }
}

async fn read_until_confirmed(
    client: Client,
    reservation_id: String,
    user: String,
    quantity: u32,
    deadline: Duration,
) -> TicketRead {
    let until = tokio::time::Instant::now() + deadline;
    let mut read = TicketRead {
        reservation_id,
        user,
        quantity,
        body: None,
        confirmed_at: None,
        error: None,
    };
    // One process per reader: the readers run at once, and a Jepsen
    // process does one thing at a time (so each answer pairs with its read).
    let process = format!("reader-{}", read.user);
    loop {
        let call = client.ticket(&process, &read.reservation_id).await;
        if call.reply.is_success() {
            read.body = call.reply.body().cloned();
            read.error = None;
            if read
                .body
                .as_ref()
                .is_some_and(|b| b["status"] == "CONFIRMED")
            {
                read.confirmed_at = Some(call.completed);
                return read;
            }
        } else {
            read.error = Some(call.reply.short());
        }
        if tokio::time::Instant::now() >= until {
            return read;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
