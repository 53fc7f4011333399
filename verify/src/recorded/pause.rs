//! The pause scenario rebuilt from its part of the history: the operator's
//! pause and resume, the freeing purchase, and every status read.

use super::Segment;
use crate::client::Call;
use crate::scenarios::pause::{user, USERS};

/// One status read of a waiting user.
#[derive(Debug, Clone)]
pub struct Read {
    /// 1-based: the user's place behind the first (who bought).
    pub user: usize,
    pub invoked: u64,
    pub completed: u64,
    pub status: Option<String>,
    pub position: Option<u64>,
    pub paused: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct PauseRun {
    pub event_id: String,
    pub pause: Option<Call>,
    pub resume: Option<Call>,
    /// The first user's purchase, which freed the only slot.
    pub freed: Option<Call>,
    pub reads: Vec<Read>,
}

pub fn rebuild(seg: &Segment) -> Result<PauseRun, String> {
    let calls = &seg.calls;
    let admin = |f: &str| calls.by("admin", f).next().map(|c| c.call.clone());
    let mut reads = Vec::new();
    for i in 1..USERS {
        let name = user(i);
        for c in calls.by(&name, "status") {
            let body = c
                .call
                .reply
                .body()
                .filter(|_| c.call.reply.status() == Some(200));
            reads.push(Read {
                user: i,
                invoked: c.call.invoked,
                completed: c.call.completed,
                status: body.and_then(|b| b["status"].as_str().map(str::to_owned)),
                position: body.and_then(|b| b["position"].as_u64()),
                paused: body.and_then(|b| b["paused"].as_bool()),
            });
        }
    }
    reads.sort_by_key(|r| r.completed);
    Ok(PauseRun {
        event_id: super::str_of(&seg.params, "eventId")?,
        pause: admin("pause"),
        resume: admin("resume"),
        freed: calls.by(&user(0), "reserve").next().map(|c| c.call.clone()),
        reads,
    })
}
