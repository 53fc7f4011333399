//! Wake-ups from Redis instead of polls: the scripts `PUBLISH` when an
//! event's admission head moves (channel: the event's state key) and when a
//! user gets a place (channel: its entries key), and one subscriber per
//! backend hands these to whoever waits in this process: the SSE streams'
//! cursor followers and duplicate `enter`s. Pub/sub is at most once (a
//! message sent while the subscriber reconnects is gone), so every waiter
//! keeps a slow poll as a fallback.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// The payload the admission script publishes on an event's state
/// channel when the operator changed the controls (heads are numbers).
const ADMISSION_CHANGED: &[u8] = b"admission";
/// How long the subscriber waits before reconnecting to Redis.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

pub(crate) struct Wakeups {
    /// `{ns:ev:` : what every event channel of this namespace starts with.
    prefix: String,
    /// Each followed event's admission head.
    heads: Mutex<HashMap<String, watch::Sender<u64>>>,
    /// Bumped on every place given in the namespace.
    placements: watch::Sender<u64>,
}

impl Wakeups {
    pub fn new(namespace: &str) -> Self {
        Wakeups {
            prefix: format!("{{{namespace}:ev:"),
            heads: Mutex::new(HashMap::new()),
            placements: watch::channel(0).0,
        }
    }

    /// Changes whenever some user of the namespace got a place.
    pub fn placements(&self) -> watch::Receiver<u64> {
        self.placements.subscribe()
    }

    /// A receiver of `event_id`'s admission head, and whether the caller
    /// must start its fallback follower (nobody followed the event yet).
    pub fn follow(&self, event_id: &str) -> (watch::Receiver<u64>, Option<watch::Sender<u64>>) {
        let mut heads = self.heads.lock().expect("heads lock poisoned");
        if let Some(tx) = heads.get(event_id) {
            return (tx.subscribe(), None);
        }
        let (tx, rx) = watch::channel(0u64);
        heads.insert(event_id.to_owned(), tx.clone());
        (rx, Some(tx))
    }

    /// Stops following `event_id` once nobody listens (true when stopped).
    pub fn unfollow_if_unheard(&self, event_id: &str) -> bool {
        let mut heads = self.heads.lock().expect("heads lock poisoned");
        match heads.get(event_id) {
            Some(tx) if tx.receiver_count() == 0 => {
                heads.remove(event_id);
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// Raises an event's head as seen (heads only grow).
    pub fn head_seen(&self, event_id: &str, head: u64) {
        let heads = self.heads.lock().expect("heads lock poisoned");
        if let Some(tx) = heads.get(event_id) {
            tx.send_if_modified(|c| {
                let moved = *c < head;
                *c = (*c).max(head);
                moved
            });
        }
    }

    /// Wakes `event_id`'s followers although its head did not move: the
    /// operator changed its admission controls, which they show.
    fn admission_changed(&self, event_id: &str) {
        let heads = self.heads.lock().expect("heads lock poisoned");
        if let Some(tx) = heads.get(event_id) {
            tx.send_modify(|_| {});
        }
    }

    fn dispatch(&self, channel: &str, payload: &[u8]) {
        let Some(rest) = channel.strip_prefix(&self.prefix) else {
            return;
        };
        if let Some(event_id) = rest.strip_suffix("}:state") {
            if payload == ADMISSION_CHANGED {
                self.admission_changed(event_id);
            } else if let Some(head) = std::str::from_utf8(payload)
                .ok()
                .and_then(|p| p.parse().ok())
            {
                self.head_seen(event_id, head);
            }
        } else if rest.ends_with("}:entries") {
            self.placements.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Subscribes to the namespace's event channels until `stop`, and
    /// reconnects when Redis goes away, to the next of `urls` (the nodes
    /// of a cluster: any one of them hears every `PUBLISH`).
    pub async fn run(&self, urls: Vec<String>, mut stop: watch::Receiver<bool>) {
        let pattern = format!("{}*", self.prefix);
        for url in urls.iter().cycle() {
            let client = match redis::Client::open(url.as_str()) {
                Ok(client) => client,
                Err(e) => {
                    // Parsed at start, so not expected; waiters keep polling.
                    warn!(error = %e, %url, "no wake-ups: pub/sub client");
                    return;
                }
            };
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.psubscribe(&pattern).await {
                    Ok(()) => {
                        info!(%pattern, "listening for wake-ups");
                        let mut messages = pubsub.on_message();
                        loop {
                            tokio::select! {
                                _ = stop.changed() => return,
                                msg = messages.next() => match msg {
                                    Some(msg) => self.dispatch(msg.get_channel_name(), msg.get_payload_bytes()),
                                    None => break,
                                },
                            }
                        }
                        debug!("wake-up subscription ended; reconnecting");
                    }
                    Err(e) => debug!(error = %e, "psubscribe"),
                },
                Err(e) => debug!(error = %e, "pub/sub connection"),
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(RECONNECT_AFTER) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::stack::keys::EventKeys;

    #[test]
    fn the_channels_the_scripts_publish_on_reach_their_waiters() {
        let wakeups = Wakeups::new("ns1");
        let keys = EventKeys::new("ns1", "e:1");
        let (mut head, first) = wakeups.follow("e:1");
        assert!(first.is_some());
        assert!(wakeups.follow("e:1").1.is_none(), "one follower per event");
        let placed = wakeups.placements();
        wakeups.dispatch(&keys.state, b"7");
        assert!(head.has_changed().unwrap());
        assert_eq!(*head.borrow_and_update(), 7);
        wakeups.dispatch(&keys.state, b"5");
        assert!(!head.has_changed().unwrap(), "heads never go back");
        wakeups.dispatch(&EventKeys::new("ns2", "e:1").state, b"9");
        assert_eq!(*head.borrow(), 7, "another namespace's event");
        assert!(!placed.has_changed().unwrap());
        wakeups.dispatch(&keys.state, b"admission");
        assert!(
            head.has_changed().unwrap(),
            "a control change wakes, head unmoved"
        );
        assert_eq!(*head.borrow_and_update(), 7);
        wakeups.dispatch(&keys.entries, b"alice");
        assert!(placed.has_changed().unwrap());
        drop(head);
        assert!(wakeups.unfollow_if_unheard("e:1"));
    }
}
