//! The embedded backend's queue rules, exercised directly.

use super::*;
use crate::backend::{Queue, Stock};
use crate::model::{Entered, EntryStatus, EventSpec, QueueStatus};

fn spec(id: &str, stock: u64, capacity: u32) -> EventSpec {
    EventSpec {
        event_id: id.into(),
        name: None,
        stock,
        per_user_limit: 2,
        active_capacity: capacity,
        active_ttl_seconds: 300,
    }
}

async fn enter_all(b: &MemoryBackend, n: usize) -> Vec<Entered> {
    let mut entered = Vec::with_capacity(n);
    for i in 0..n {
        entered.push(b.enter("e", &format!("u{i}")).await.unwrap());
    }
    entered
}

fn claims(event: &str, user: &str, e: &Entered) -> Claims {
    Claims {
        event_id: event.into(),
        user_id: user.into(),
        seq: e.seq,
        issued_at: e.issued_at,
    }
}

#[tokio::test]
async fn admission_is_fifo_and_bounded_by_capacity() {
    let b = MemoryBackend::start(BackendOptions::default());
    b.create_event(spec("e", 10, 2)).await.unwrap();
    let entered = enter_all(&b, 5).await;
    let statuses: Vec<_> = entered
        .iter()
        .map(|e| (e.view.status, e.view.position))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (QueueStatus::Active, 0),
            (QueueStatus::Active, 0),
            (QueueStatus::Waiting, 1),
            (QueueStatus::Waiting, 2),
            (QueueStatus::Waiting, 3),
        ]
    );
    // A purchase frees a slot for the next in line, not anyone else.
    b.reserve(&claims("e", "u0", &entered[0]), 1).await.unwrap();
    let v2 = b
        .queue_status(&claims("e", "u2", &entered[2]))
        .await
        .unwrap();
    let v3 = b
        .queue_status(&claims("e", "u3", &entered[3]))
        .await
        .unwrap();
    assert_eq!(
        (v2.view.status, v3.view.status, v3.view.position),
        (QueueStatus::Active, QueueStatus::Waiting, 1)
    );
    assert_eq!(b.event("e").await.unwrap().active, 2);
}

#[tokio::test]
async fn the_lifo_negative_control_admits_the_newest_first() {
    let b = MemoryBackend::start(BackendOptions {
        controls: NegativeControls {
            fifo: true,
            ..NegativeControls::default()
        },
        ..BackendOptions::default()
    });
    b.create_event(spec("e", 10, 1)).await.unwrap();
    let entered = enter_all(&b, 4).await;
    b.reserve(&claims("e", "u0", &entered[0]), 1).await.unwrap();
    let mut statuses = Vec::new();
    for (i, e) in entered.iter().enumerate() {
        let view = b.queue_status(&claims("e", &format!("u{i}"), e)).await;
        statuses.push(view.unwrap().view.status);
    }
    let status = |i: usize| statuses[i];
    assert_eq!(status(3), QueueStatus::Active, "the newest jumped the line");
    assert_eq!(
        (status(1), status(2)),
        (QueueStatus::Waiting, QueueStatus::Waiting)
    );
    let v = b.event("e").await.unwrap();
    assert_eq!((v.waiting, v.active), (2, 1));
}

#[tokio::test]
async fn enter_is_idempotent() {
    let b = MemoryBackend::start(BackendOptions::default());
    b.create_event(spec("e", 10, 1)).await.unwrap();
    let first = b.enter("e", "a").await.unwrap();
    b.enter("e", "b").await.unwrap();
    let again = b.enter("e", "a").await.unwrap();
    assert_eq!((first.seq, first.issued_at), (again.seq, again.issued_at));
    assert_eq!(b.event("e").await.unwrap().waiting, 1);
}

#[tokio::test]
async fn a_failed_reserve_changes_nothing() {
    let b = MemoryBackend::start(BackendOptions::default());
    b.create_event(spec("e", 1, 10)).await.unwrap();
    let a = b.enter("e", "a").await.unwrap();
    let err = b.reserve(&claims("e", "a", &a), 2).await.unwrap_err();
    assert_eq!(err.code(), "SOLD_OUT");
    let v = b.event("e").await.unwrap();
    assert_eq!((v.remaining, v.sold, v.active), (1, 0, 1));
    // The token is still ACTIVE and can buy what is there.
    b.reserve(&claims("e", "a", &a), 1).await.unwrap();
    assert_eq!(b.event("e").await.unwrap().remaining, 0);
}

/// `activeRemainingSeconds` counts down from the event's active time from
/// admission (rounded up), and is 0 while WAITING and once DONE.
#[tokio::test(start_paused = true)]
async fn the_active_time_left_counts_from_admission() {
    let b = MemoryBackend::start(BackendOptions::default());
    b.create_event(spec("e", 10, 1)).await.unwrap();
    let entered = enter_all(&b, 2).await;
    let (u0, u1) = (
        claims("e", "u0", &entered[0]),
        claims("e", "u1", &entered[1]),
    );
    let left = |s: EntryStatus| (s.view.status, s.active_remaining_seconds);
    assert_eq!(
        left(b.queue_status(&u0).await.unwrap()),
        (QueueStatus::Active, 300)
    );
    tokio::time::advance(Duration::from_millis(100_500)).await;
    assert_eq!(
        left(b.queue_status(&u0).await.unwrap()),
        (QueueStatus::Active, 200)
    );
    assert_eq!(
        left(b.queue_status(&u1).await.unwrap()),
        (QueueStatus::Waiting, 0)
    );
    b.reserve(&u0, 1).await.unwrap();
    assert_eq!(
        left(b.queue_status(&u0).await.unwrap()),
        (QueueStatus::Done, 0)
    );
    // The next in line has a whole turn of its own.
    assert_eq!(
        left(b.queue_status(&u1).await.unwrap()),
        (QueueStatus::Active, 300)
    );
}
