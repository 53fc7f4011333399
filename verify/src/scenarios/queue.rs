//! The queue scenario behind checks 3 (FIFO) and 4 (what clients are shown).
//!
//! Users enter in waves: concurrently within a wave, one wave after the
//! other, so many pairs have a real-time order (one's enter completed before
//! the other's began). Every user follows its position (SSE or polling).
//! The driver then frees one ACTIVE slot at a time by having one ACTIVE user
//! buy, and waits for the admission that follows before freeing the next.
//! Admission order is therefore known exactly (round by round), not guessed
//! from arrival times, whatever the target's latency. Before the first
//! purchase, one WAITING user tries to buy (a correct server refuses).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;

use super::{create_event, until_active, Shown, Watch};
use crate::client::{Call, Client, Reply};
use crate::progress::Progress;
use crate::RunError;

/// Users entering at once in one wave.
const WAVE: usize = 8;
/// How long one admission may take before the queue counts as stalled.
const ADMISSION_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct QueueUser {
    pub user: String,
    pub wave: usize,
    pub enter: Call,
    pub token: Option<String>,
    /// Every position the user was shown, in order.
    pub shown: Vec<Shown>,
    /// The round (purchases made before it) in which ACTIVE was seen.
    pub admitted_round: Option<usize>,
    pub admitted_at: Option<u64>,
    pub bought_at: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct QueueRun {
    pub event_id: String,
    pub capacity: u32,
    pub users: Vec<QueueUser>,
    /// (time, active) samples of the event while the run went.
    pub active_samples: Vec<(u64, u64)>,
    /// Moments the clients saw more users ACTIVE than capacity allows.
    pub over_capacity: Vec<String>,
    /// Why the run stopped early, if it did.
    pub stalled: Option<String>,
}

pub async fn run(
    client: &Client,
    event_id: String,
    users: usize,
    capacity: u32,
    watch: Watch,
    progress: &Progress,
) -> Result<QueueRun, RunError> {
    client.history.note(
        "scenario",
        json!({"scenario": "queue", "eventId": event_id, "users": users,
               "capacity": capacity, "wave": WAVE}),
    );
    create_event(
        client,
        json!({
            "eventId": event_id,
            "name": "verify queue",
            "stock": users,
            "perUserLimit": 1,
            "activeCapacity": capacity,
            "activeTtlSeconds": 600,
        }),
    )
    .await?;

    let samples = Arc::new(Mutex::new(Vec::new()));
    let (stop_sampler, mut stopped) = tokio::sync::watch::channel(false);
    let sampler = {
        let client = client.clone();
        let samples = samples.clone();
        let event_id = event_id.clone();
        tokio::spawn(async move {
            loop {
                let call = client.event("sampler", &event_id).await;
                if let Some(active) = call.reply.body().and_then(|b| b["active"].as_u64()) {
                    samples
                        .lock()
                        .expect("samples lock")
                        .push((call.completed, active));
                }
                tokio::select! {
                    _ = stopped.changed() => return,
                    () = tokio::time::sleep(Duration::from_millis(10)) => {}
                }
            }
        })
    };

    progress.step(format!("queue: {users} users entering in waves of {WAVE}"));
    let mut entered = Vec::with_capacity(users);
    for wave in 0..users.div_ceil(WAVE) {
        let calls: Vec<_> = (wave * WAVE..((wave + 1) * WAVE).min(users))
            .map(|i| {
                let client = client.clone();
                let event_id = event_id.clone();
                tokio::spawn(async move {
                    let user = format!("queue-{i}");
                    let call = client.enter(&user, &event_id, &user).await;
                    (user, call)
                })
            })
            .collect();
        for c in calls {
            let (user, call) = c
                .await
                .map_err(|e| RunError::Other(format!("enter task panicked: {e}")))?;
            entered.push((user, wave, call));
        }
    }

    progress.step(format!(
        "queue: admitting one at a time (activeCapacity {capacity})"
    ));
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Result<u64, String>)>();
    let mut logs = Vec::new();
    let mut watchers = Vec::new();
    let mut users_out: Vec<QueueUser> = Vec::with_capacity(users);
    for (idx, (user, wave, call)) in entered.into_iter().enumerate() {
        let token = match &call.reply {
            Reply::Http { status: 200, .. } => call.reply.str_field("token").map(str::to_owned),
            _ => None,
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        logs.push(log.clone());
        let error = token
            .is_none()
            .then(|| format!("enter answered {}", call.reply.short()));
        if let Some(token) = token.clone() {
            let client = client.clone();
            let tx = tx.clone();
            let user = user.clone();
            watchers.push(tokio::spawn(async move {
                let seen = until_active(
                    &client,
                    &user,
                    &token,
                    watch,
                    Duration::from_secs(600),
                    |s| log.lock().expect("log lock").push(s),
                )
                .await;
                let _ = tx.send((idx, seen));
            }));
        }
        users_out.push(QueueUser {
            user,
            wave,
            enter: call,
            token,
            shown: Vec::new(),
            admitted_round: None,
            admitted_at: None,
            bought_at: None,
            error,
        });
    }
    drop(tx);

    let with_token = users_out.iter().filter(|u| u.token.is_some()).count();
    let mut over_capacity = Vec::new();
    let mut stalled = None;
    let mut purchases = 0usize;
    let mut admitted = 0usize;
    let mut bought_early = 0usize;
    'rounds: loop {
        let expected = (capacity as usize + purchases).min(with_token - bought_early);
        while admitted < expected {
            match tokio::time::timeout(ADMISSION_DEADLINE, rx.recv()).await {
                Ok(Some((idx, seen))) => {
                    record(&mut users_out[idx], seen, purchases, &mut admitted);
                }
                Ok(None) | Err(_) => {
                    stalled = Some(format!(
                        "after {purchases} purchases only {admitted} of {expected} expected admissions were seen within {ADMISSION_DEADLINE:?}"
                    ));
                    break 'rounds;
                }
            }
        }
        while let Ok((idx, seen)) = rx.try_recv() {
            record(&mut users_out[idx], seen, purchases, &mut admitted);
        }
        if admitted > expected {
            over_capacity.push(format!(
                "after {purchases} purchases {admitted} users had been shown ACTIVE; at most {expected} may be (activeCapacity {capacity})"
            ));
        }
        if purchases == 0 && early_purchase_probe(client, &event_id, &mut users_out).await {
            bought_early += 1;
        }
        if let Some(u) = users_out
            .iter()
            .find(|u| u.error.is_some() && u.token.is_some())
        {
            stalled = Some(format!(
                "{}: {}",
                u.user,
                u.error.clone().unwrap_or_default()
            ));
            break;
        }
        let candidates: Vec<usize> = (0..users_out.len())
            .filter(|&i| users_out[i].admitted_at.is_some() && users_out[i].bought_at.is_none())
            .collect();
        if candidates.is_empty() {
            break;
        }
        // Not the earliest admitted: a scrambled pick, so that FIFO does not
        // follow from the order in which we free slots.
        let pick = candidates[(purchases * 7 + 3) % candidates.len()];
        let user = users_out[pick].user.clone();
        let token = users_out[pick].token.clone().unwrap_or_default();
        let call = client.reserve(&user, Some(&token), &event_id, 1).await;
        if !call.reply.is_success() {
            stalled = Some(format!(
                "{user} was shown ACTIVE but reserve answered {}",
                call.reply.short()
            ));
            break;
        }
        users_out[pick].bought_at = Some(call.invoked);
        purchases += 1;
    }

    if let Some(why) = &stalled {
        client.history.note("stalled", json!({ "why": why }));
    }
    let _ = stop_sampler.send(true);
    let _ = sampler.await;
    for w in watchers {
        w.abort();
    }
    for (u, log) in users_out.iter_mut().zip(logs) {
        u.shown = std::mem::take(&mut *log.lock().expect("log lock"));
    }
    let active_samples = std::mem::take(&mut *samples.lock().expect("samples lock"));
    Ok(QueueRun {
        event_id,
        capacity,
        users: users_out,
        active_samples,
        over_capacity,
        stalled,
    })
}

/// Before the first purchase frees a slot (and with an active time far
/// longer than the run), no WAITING user can have been admitted: the last
/// such user tries to buy. A correct server refuses (NOT_ACTIVE); a
/// purchase is recorded, and check 4 reports it as made before ACTIVE was
/// shown. Returns whether the purchase went through.
async fn early_purchase_probe(client: &Client, event_id: &str, users: &mut [QueueUser]) -> bool {
    let Some(waiting) = users
        .iter_mut()
        .rev()
        .find(|u| u.token.is_some() && u.admitted_at.is_none() && u.bought_at.is_none())
    else {
        return false;
    };
    let token = waiting.token.clone().unwrap_or_default();
    // Noted so the history tells this purchase from the driver's.
    client
        .history
        .note("early-buy-probe", json!({ "user": waiting.user }));
    let call = client
        .reserve(&waiting.user, Some(&token), event_id, 1)
        .await;
    if call.reply.is_success() {
        waiting.bought_at = Some(call.invoked);
    }
    call.reply.is_success()
}

fn record(user: &mut QueueUser, seen: Result<u64, String>, round: usize, admitted: &mut usize) {
    match seen {
        Ok(at) => {
            user.admitted_round = Some(round);
            user.admitted_at = Some(at);
            *admitted += 1;
        }
        Err(e) => user.error = Some(e),
    }
}
