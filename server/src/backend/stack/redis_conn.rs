//! The stack's Redis connection: one server, or a Redis Cluster, chosen by
//! the form of `--redis-url`:
//!
//! - `redis://host:port[/db]` (or any URL the `redis` crate opens): one
//!   server, through a reconnecting `ConnectionManager`.
//! - `redis+cluster://host:port[,host:port...]`: a Redis Cluster, reached
//!   through any of the listed nodes (seeds; the others are discovered).
//!   Credentials, if any, go on the first node (`user:pass@host:port`) and
//!   hold for all of them; a cluster has only database 0, so no `/db`.
//!
//! Every operation runs unchanged on both, because each command and script
//! touches the keys of one event only, which share one hash tag (see
//! [`super::keys`]); the few namespace-wide keys are used one at a time.
//! A third kind of target (Sentinel, say) is one more variant of
//! [`RedisTarget`] and [`RedisConn`].

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, Value};

/// The scheme that names a Redis Cluster.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

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
}

impl RedisTarget {
    /// Reads `--redis-url` (forms in the module's documentation).
    pub fn parse(url: &str) -> Result<Self, String> {
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
        }
    }
}

/// A connection to the stack's Redis, cheap to clone (each clone shares
/// the underlying multiplexed connections).
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisConn {
    /// Connects, failing within [`TIMEOUT`]-ish when nothing answers.
    pub async fn connect(target: &RedisTarget) -> RedisResult<Self> {
        match target {
            RedisTarget::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                let manager = ConnectionManager::new_with_config(
                    client,
                    ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(TIMEOUT))
                        .set_response_timeout(Some(TIMEOUT))
                        .set_number_of_retries(1),
                )
                .await?;
                Ok(RedisConn::Single(manager))
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

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
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
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
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
        ] {
            let err = RedisTarget::parse(url).expect_err(url);
            assert!(err.contains(says), "{url}: {err}");
        }
    }
}
