//! The stack's Redis connection: one server, or a Redis Cluster, chosen by
//! the form of `--redis-url`:
//!
//! - `redis://host:port[/db]` (or any URL the `redis` crate opens): one
//!   server, through a reconnecting `ConnectionManager`.
//! - `redis+cluster://host:port[,host:port...]`: a Redis Cluster, reached
//!   through any of the listed nodes (seeds; the others are discovered).
//!   Credentials, if any, go on the first node (`user:pass@host:port`) and
//!   hold for all of them; a cluster has only database 0, so no `/db`.
//! - `redis+sentinel://host:port[,host:port...]/NAME`: the primary that
//!   the listed Sentinels name `NAME`. The connection follows it: a task
//!   asks the Sentinels for the primary's address every 250 ms
//!   (`SENTINEL get-master-addr-by-name`) and, when it changed (a
//!   failover), connects to the new one; requests started after that go
//!   there.
//!
//! Every operation runs unchanged on both, because each command and script
//! touches the keys of one event only, which share one hash tag (see
//! [`super::keys`]); the few namespace-wide keys are used one at a time.

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, Value};

/// The scheme that names a Redis Cluster.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";
/// The scheme that names a primary found through Sentinels.
pub const SENTINEL_SCHEME: &str = "redis+sentinel://";
/// How often the Sentinels are asked where the primary is.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// How long connecting, and one answer, may take before the call fails
/// (the health loop then reports Redis down instead of requests hanging).
const TIMEOUT: Duration = Duration::from_secs(2);

/// Where the stack's Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server, by its URL.
    Single(String),
    /// A cluster, by the `redis://` URLs of its seed nodes.
    Cluster(Vec<String>),
    /// The primary the Sentinels (`redis://` URLs) name `master`.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
}

impl RedisTarget {
    /// Reads `--redis-url` (forms in the module's documentation).
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(rest) = url.strip_prefix(SENTINEL_SCHEME) {
            return parse_sentinel(url, rest);
        }
        let Some(list) = url.strip_prefix(CLUSTER_SCHEME) else {
            url.into_connection_info()
                .map_err(|e| format!("Redis URL {url}: {e}"))?;
            return Ok(RedisTarget::Single(url.to_owned()));
        };
        let nodes: Vec<&str> = list.split(',').map(str::trim).collect();
        if nodes.iter().any(|n| n.is_empty()) {
            return Err(format!(
                "Redis Cluster URL {url}: expected {CLUSTER_SCHEME}host:port[,host:port...]"
            ));
        }
        if let Some(n) = nodes.iter().find(|n| n.contains(['/', '?'])) {
            return Err(format!(
                "Redis Cluster URL {url}: node '{n}' has a path or query; a cluster has only database 0"
            ));
        }
        // The cluster client wants every seed with the same credentials.
        let credentials = nodes[0].rsplit_once('@').map(|(c, _)| c);
        let urls: Vec<String> = nodes
            .iter()
            .map(|n| match credentials {
                Some(c) if !n.contains('@') => format!("redis://{c}@{n}"),
                _ => format!("redis://{n}"),
            })
            .collect();
        for u in &urls {
            u.as_str()
                .into_connection_info()
                .map_err(|e| format!("Redis Cluster URL {url}: {e}"))?;
        }
        Ok(RedisTarget::Cluster(urls))
    }

    /// The servers a pub/sub subscriber may use, in order of preference:
    /// on a cluster any node hears every `PUBLISH` (classic pub/sub is
    /// broadcast over the cluster bus), so the seeds, tried in turn.
    pub fn subscriber_urls(&self) -> Vec<String> {
        match self {
            RedisTarget::Single(url) => vec![url.clone()],
            RedisTarget::Cluster(nodes) => nodes.clone(),
            // Resolved at connect time (see `RedisConn::subscriber_urls`).
            RedisTarget::Sentinel { .. } => Vec::new(),
        }
    }
}

/// `host:port[,host:port...]/NAME` after the scheme.
fn parse_sentinel(url: &str, rest: &str) -> Result<RedisTarget, String> {
    let bad = || {
        format!("Redis Sentinel URL {url}: expected {SENTINEL_SCHEME}host:port[,host:port...]/NAME")
    };
    let (list, master) = rest.split_once('/').ok_or_else(bad)?;
    if master.is_empty() || master.contains(['/', '?']) {
        return Err(bad());
    }
    let sentinels: Vec<String> = list
        .split(',')
        .map(|n| format!("redis://{}", n.trim()))
        .collect();
    for s in &sentinels {
        if s.len() == "redis://".len() {
            return Err(bad());
        }
        s.as_str()
            .into_connection_info()
            .map_err(|e| format!("Redis Sentinel URL {url}: {e}"))?;
    }
    Ok(RedisTarget::Sentinel {
        sentinels,
        master: master.to_owned(),
    })
}

/// A connection to the stack's Redis, cheap to clone (each clone shares
/// the underlying multiplexed connections).
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Arc<Followed>),
}

/// The primary the Sentinels name, followed across failovers.
pub struct Followed {
    sentinels: Vec<String>,
    master: String,
    /// The primary's address and a connection to it.
    current: RwLock<(String, ConnectionManager)>,
}

impl Followed {
    fn connection(&self) -> ConnectionManager {
        self.current.read().expect("poisoned").1.clone()
    }

    fn address(&self) -> String {
        self.current.read().expect("poisoned").0.clone()
    }

    /// Asks the Sentinels in turn where the primary is: `redis://host:port`.
    async fn ask(sentinels: &[String], master: &str) -> RedisResult<String> {
        let mut last = None;
        for s in sentinels {
            let asked = async {
                let client = redis::Client::open(s.as_str())?;
                let mut c =
                    tokio::time::timeout(TIMEOUT, client.get_multiplexed_async_connection())
                        .await
                        .map_err(|_| timeout_error("Sentinel connect"))??;
                let addr: Option<(String, u16)> = tokio::time::timeout(
                    TIMEOUT,
                    redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(master)
                        .query_async(&mut c),
                )
                .await
                .map_err(|_| timeout_error("Sentinel answer"))??;
                addr.map(|(host, port)| format!("redis://{host}:{port}"))
                    .ok_or_else(|| {
                        redis::RedisError::from((
                            redis::ErrorKind::MasterNameNotFoundBySentinel,
                            "Sentinel knows no such primary",
                            master.to_owned(),
                        ))
                    })
            };
            match asked.await {
                Ok(addr) => return Ok(addr),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| timeout_error("no Sentinel")))
    }

    /// Follows the primary until the connection is dropped.
    async fn follow(me: Weak<Followed>) {
        loop {
            tokio::time::sleep(FOLLOW_EVERY).await;
            let Some(f) = me.upgrade() else { return };
            let Ok(addr) = Followed::ask(&f.sentinels, &f.master).await else {
                continue;
            };
            if addr == f.address() {
                continue;
            }
            match single(&addr).await {
                Ok(conn) => {
                    tracing::warn!(from = %f.address(), to = %addr, "Redis primary moved (Sentinel failover): following it");
                    *f.current.write().expect("poisoned") = (addr, conn);
                }
                Err(e) => tracing::debug!(error = %e, %addr, "new Redis primary not reachable yet"),
            }
        }
    }
}

fn timeout_error(what: &'static str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, what, "timed out".to_owned()))
}

/// A reconnecting connection to one server.
async fn single(url: &str) -> RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    ConnectionManager::new_with_config(
        client,
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1),
    )
    .await
}

impl RedisConn {
    /// Connects, failing within [`TIMEOUT`]-ish when nothing answers.
    pub async fn connect(target: &RedisTarget) -> RedisResult<Self> {
        match target {
            RedisTarget::Single(url) => Ok(RedisConn::Single(single(url).await?)),
            RedisTarget::Sentinel { sentinels, master } => {
                let addr = Followed::ask(sentinels, master).await?;
                let conn = single(&addr).await?;
                let followed = Arc::new(Followed {
                    sentinels: sentinels.clone(),
                    master: master.clone(),
                    current: RwLock::new((addr, conn)),
                });
                tokio::spawn(Followed::follow(Arc::downgrade(&followed)));
                Ok(RedisConn::Sentinel(followed))
            }
            RedisTarget::Cluster(nodes) => {
                let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .connection_timeout(TIMEOUT)
                    .response_timeout(TIMEOUT)
                    // A few retries follow MOVED/ASK while slots migrate;
                    // the overall bound keeps a dead shard from holding a
                    // request for the default 16 backed-off retries.
                    .retries(3)
                    .overall_response_timeout(Some(2 * TIMEOUT))
                    .build()?;
                Ok(RedisConn::Cluster(client.get_async_connection().await?))
            }
        }
    }
}

impl RedisConn {
    /// This connection as one server's: a followed primary's current
    /// connection, so that commands which must reach the same server (a
    /// write, then `WAIT` for its replication) do, even across a failover.
    pub fn pinned(&self) -> RedisConn {
        match self {
            RedisConn::Sentinel(f) => RedisConn::Single(f.connection()),
            other => other.clone(),
        }
    }

    /// Whether writes are replicated to replicas that may be promoted (a
    /// Sentinel-managed primary): then an acknowledged write must have
    /// reached one (see `reserve`).
    pub fn has_replicas(&self) -> bool {
        matches!(self, RedisConn::Sentinel(_))
    }

    /// The servers a pub/sub subscriber may use: the target's, or for a
    /// followed primary the one found at start (after a failover the
    /// subscriber's reconnections fail and followers poll instead).
    pub fn subscriber_urls(&self, target: &RedisTarget) -> Vec<String> {
        match self {
            RedisConn::Sentinel(f) => vec![f.address()],
            _ => target.subscriber_urls(),
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
            RedisConn::Sentinel(f) => {
                let mut c = f.connection();
                Box::pin(async move { c.req_packed_command(cmd).await })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Sentinel(f) => {
                let mut c = f.connection();
                Box::pin(async move { c.req_packed_commands(pipeline, offset, count).await })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
            RedisConn::Sentinel(f) => f.connection().get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_form_chooses_one_server_or_a_cluster() {
        assert_eq!(
            RedisTarget::parse("redis://127.0.0.1:16379/2"),
            Ok(RedisTarget::Single("redis://127.0.0.1:16379/2".into()))
        );
        assert_eq!(
            RedisTarget::parse("redis+cluster://127.0.0.1:17001, 127.0.0.1:17002"),
            Ok(RedisTarget::Cluster(vec![
                "redis://127.0.0.1:17001".into(),
                "redis://127.0.0.1:17002".into()
            ]))
        );
    }

    #[test]
    fn a_sentinel_url_names_the_sentinels_and_the_primary() {
        assert_eq!(
            RedisTarget::parse("redis+sentinel://127.0.0.1:21381,127.0.0.1:21382/tb"),
            Ok(RedisTarget::Sentinel {
                sentinels: vec![
                    "redis://127.0.0.1:21381".into(),
                    "redis://127.0.0.1:21382".into()
                ],
                master: "tb".into()
            })
        );
    }

    #[test]
    fn the_first_nodes_credentials_hold_for_every_seed() {
        let RedisTarget::Cluster(nodes) =
            RedisTarget::parse("redis+cluster://u:pw@10.0.0.1:7000,10.0.0.2:7000").unwrap()
        else {
            panic!("not a cluster")
        };
        assert_eq!(
            nodes,
            ["redis://u:pw@10.0.0.1:7000", "redis://u:pw@10.0.0.2:7000"]
        );
    }

    #[test]
    fn malformed_urls_are_refused_with_the_reason() {
        for (url, says) in [
            ("redis+cluster://", "expected"),
            ("redis+cluster://a:1,,b:2", "expected"),
            ("redis+cluster://a:1/3", "database 0"),
            ("redis+cluster://a:notaport", "Redis Cluster URL"),
            ("http://127.0.0.1:6379", "Redis URL"),
            ("redis+sentinel://127.0.0.1:26379", "expected"),
            ("redis+sentinel://127.0.0.1:26379/", "expected"),
            ("redis+sentinel://,127.0.0.1:26379/m", "expected"),
        ] {
            let err = RedisTarget::parse(url).expect_err(url);
            assert!(err.contains(says), "{url}: {err}");
        }
    }
}
