//! Names on the shared stack: an event's Redis keys and the Kafka topics of
//! a namespace. A namespace isolates one deployment on a shared stack
//! (Redis key prefix, PostgreSQL schema, Kafka topic prefix).
//!
//! Every key of one event shares the hash tag `{ns:ev:ID}`, so each script
//! touches one slot and runs unchanged on Redis Cluster.

use crate::concert::SeatEvent;

/// The namespace whose topics carry no prefix.
pub const DEFAULT_NAMESPACE: &str = "ticketbench";

/// The Redis keys of one event. Entry `seq` is 0-based; entries `0..head`
/// have been admitted, so a WAITING entry's position is `seq - head + 1`.
#[derive(Debug, Clone)]
pub struct EventKeys {
    /// hash: stock, limit, cap, ttl, name.
    pub meta: String,
    /// hash: remaining, sold, n (entries so far), head (admitted so far).
    pub state: String,
    /// hash: userId -> "seq:issuedAt".
    pub entries: String,
    /// hash: seq -> userId.
    pub seqs: String,
    /// zset: seq scored by the end of its ACTIVE time (ms).
    pub active: String,
    /// set: seqs whose token bought (or paid).
    pub done: String,
    /// hash: userId -> items bought.
    pub bought: String,
    /// hash: reservationId -> reservation JSON.
    pub reservations: String,
    /// set: reservationIds not yet known to be in PostgreSQL.
    pub pending: String,
    /// list: the last 64 admission times (ms), newest first.
    pub admissions: String,
}

impl EventKeys {
    pub fn new(namespace: &str, event_id: &str) -> Self {
        let tag = format!("{{{namespace}:ev:{event_id}}}");
        let key = |name: &str| format!("{tag}:{name}");
        EventKeys {
            meta: key("meta"),
            state: key("state"),
            entries: key("entries"),
            seqs: key("seqs"),
            active: key("active"),
            done: key("done"),
            bought: key("bought"),
            reservations: key("res"),
            pending: key("pending"),
            admissions: key("adm"),
        }
    }

    /// Every key, in the order the Lua scripts bind them to names (the
    /// scripts' prelude names `KEYS[1..10]` in this order).
    pub fn for_script(&self) -> [&str; 10] {
        [
            &self.meta,
            &self.state,
            &self.entries,
            &self.seqs,
            &self.active,
            &self.done,
            &self.bought,
            &self.reservations,
            &self.pending,
            &self.admissions,
        ]
    }
}

/// The set of all event ids of a namespace (one key, outside any event's slot).
pub fn events_key(namespace: &str) -> String {
    format!("{namespace}:events")
}

/// reservationId -> eventId, so a ticket can be found by id alone.
pub fn reservation_index_key(namespace: &str, reservation_id: &str) -> String {
    format!("{namespace}:rid:{reservation_id}")
}

/// The Kafka topics of a namespace (the default namespace has them
/// unprefixed).
#[derive(Debug, Clone)]
pub struct Topics {
    /// The waiting stage's name stem: each event's line is its own
    /// one-partition topic ([`Topics::line`]).
    pub queue: String,
    /// Accepted reservations, on their way to PostgreSQL.
    pub reserved: String,
    /// The seat-map events, in `SeatEvent::ALL` order.
    seat: [String; 3],
    /// `queue.activated`: one record per admitted user.
    pub activated: String,
}

impl Topics {
    pub fn new(namespace: &str) -> Self {
        let prefix = if namespace == DEFAULT_NAMESPACE {
            String::new()
        } else {
            format!("{namespace}.")
        };
        Topics {
            queue: format!("{prefix}ticket.queue"),
            reserved: format!("{prefix}ticket.reserved"),
            seat: SeatEvent::ALL.map(|e| format!("{prefix}{}", e.topic())),
            activated: format!("{prefix}queue.activated"),
        }
    }

    pub fn seat(&self, event: SeatEvent) -> &str {
        &self.seat[event as usize]
    }

    /// The topics created at start (the lines come with their events):
    /// every topic the stack sends to, so none is first made by a send
    /// with the broker's default settings.
    pub fn all(&self) -> Vec<&str> {
        let mut all = vec![self.reserved.as_str()];
        all.extend(self.seat.iter().map(String::as_str));
        all.push(&self.activated);
        all
    }

    /// An event's waiting line: one partition, so the offset the broker
    /// gives an entry is its place. Event ids may hold `:`, which topic
    /// names may not: `_` becomes `__` and `:` becomes `_c` (one-to-one).
    pub fn line(&self, event_id: &str) -> String {
        let mut topic = format!("{}.", self.queue);
        for c in event_id.chars() {
            match c {
                '_' => topic.push_str("__"),
                ':' => topic.push_str("_c"),
                c => topic.push(c),
            }
        }
        topic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_keys_share_one_hash_tag_and_differ() {
        let keys = EventKeys::new("ns", "e1");
        let all = keys.for_script();
        assert!(all.iter().all(|k| k.starts_with("{ns:ev:e1}:")));
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
        assert_eq!(all[0], keys.meta);
        assert_eq!(all[9], keys.admissions);
    }

    #[test]
    fn only_the_default_namespace_has_unprefixed_topics() {
        let default = Topics::new(DEFAULT_NAMESPACE);
        assert_eq!(default.queue, "ticket.queue");
        assert_eq!(
            default.seat(SeatEvent::PaymentCompleted),
            "payment.completed"
        );
        let other = Topics::new("run7");
        assert_eq!(other.reserved, "run7.ticket.reserved");
        assert_eq!(other.all().len(), 5);
        assert!(other.all().iter().all(|t| t.starts_with("run7.")));
    }

    /// Every topic a sender writes to is created at start: `queue.activated`
    /// was once sent to without being in the list.
    #[test]
    fn the_topics_created_at_start_include_every_topic_sent_to() {
        for ns in [DEFAULT_NAMESPACE, "run7"] {
            let topics = Topics::new(ns);
            let all = topics.all();
            let sent_to = [
                topics.reserved.clone(),
                super::super::activations::topic(ns),
            ]
            .into_iter()
            .chain(SeatEvent::ALL.map(|e| topics.seat(e).to_owned()));
            for topic in sent_to {
                assert!(
                    all.contains(&topic.as_str()),
                    "{ns}: {topic} not in {all:?}"
                );
            }
        }
        assert_eq!(Topics::new(DEFAULT_NAMESPACE).activated, "queue.activated");
    }

    #[test]
    fn each_event_has_its_own_line_topic_with_a_legal_name() {
        let topics = Topics::new("run7");
        let names = ["a:b", "a_cb", "a__b", "a_b", "x.y-z"].map(|id| topics.line(id));
        assert_eq!(names[0], "run7.ticket.queue.a_cb");
        assert_eq!(names[1], "run7.ticket.queue.a__cb");
        let distinct: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
        assert!(names.iter().all(|n| n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))));
    }
}
