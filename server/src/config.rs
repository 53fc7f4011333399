//! Command-line and environment configuration (clap derive).

use std::net::SocketAddr;

use clap::Parser;

use crate::backend::BackendKind;

/// A secret given on the command line or in the environment. Its Debug
/// shows neither it nor its length, so a logged `Config` shows neither the
/// admin token nor the token secret (a password inside `--redis-url` or
/// `--postgres-url` still shows).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl std::ops::Deref for Secret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The reference ticketing server.
#[derive(Debug, Clone, Parser)]
#[command(name = "ticket-server", version, about)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Bearer token for the admin API. When absent: on the real backend the
    /// fleet's (created in PostgreSQL by the first instance), on the
    /// embedded one a random one; either way written to
    /// `--admin-token-file`, never logged or printed.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,

    /// Where the admin token in use is written (mode 0600, before the server
    /// answers) when `--admin-token` is absent; its path is printed.
    /// Default: `ticket-server-<port>.admin-token` in `$TMPDIR` (else `/tmp`).
    #[arg(long, env = "ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<std::path::PathBuf>,

    /// HMAC secret for queue tokens. Every instance that must accept the
    /// others' tokens needs the same one. When absent: on the real backend
    /// the fleet's (created in PostgreSQL by the first instance), on the
    /// embedded one a random one.
    #[arg(long, env = "TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<Secret>,

    /// Where state lives.
    #[arg(long, env = "BACKEND", value_enum, default_value_t = BackendKind::Memory)]
    pub backend: BackendKind,

    /// Redis of the real backend: `redis://HOST:PORT` (one server) or
    /// `redis+cluster://HOST:PORT[,HOST:PORT...]` (a Redis Cluster).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Kafka bootstrap servers of the real backend.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,

    /// How long the real backend's Kafka producer waits to batch records
    /// (librdkafka's `linger.ms`). Every produce request costs the broker
    /// a storage transaction, so a longer wait trades that much latency on
    /// enter and reserve for fewer requests at low per-instance rates.
    #[arg(long, env = "KAFKA_LINGER_MS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub kafka_linger_ms: u32,

    /// PostgreSQL of the real backend.
    #[arg(
        long,
        env = "POSTGRES_URL",
        default_value = "postgres://ticketbench:ticketbench@127.0.0.1:5432/ticketbench"
    )]
    pub postgres_url: String,

    /// Partitions of the Kafka topics created at start.
    #[arg(long, env = "KAFKA_PARTITIONS", default_value_t = 4,
          value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub kafka_partitions: i32,

    /// Isolates one deployment on a shared stack: Redis key prefix,
    /// PostgreSQL schema, Kafka topic prefix ([a-z0-9_]).
    #[arg(long, env = "NAMESPACE", default_value = "ticketbench")]
    pub namespace: String,

    /// This instance's name in leases and heartbeats (default: random).
    #[arg(long, env = "INSTANCE_ID")]
    pub instance_id: Option<String>,

    #[command(flatten)]
    pub hooks: TestHooks,

    #[command(flatten)]
    pub controls: NegativeControls,

    #[command(flatten)]
    pub seats: crate::backend::stack::seat_options::SeatOptions,

    /// How long an unpaid seat hold lasts: seconds, or with a unit
    /// (`300`, `300s`, `1500ms`, `5m`), 100 ms ..= 24 h.
    #[arg(long, env = "HOLD_TTL", default_value = "300", value_parser = parse_hold_ttl)]
    pub hold_ttl: std::time::Duration,

    /// Queue tokens older than this are refused (401).
    #[arg(long, env = "TOKEN_TTL_SECS", default_value_t = 86_400)]
    pub token_ttl_secs: u64,

    /// Seconds between SSE heartbeats (the contract requires at most 15).
    #[arg(long, env = "SSE_HEARTBEAT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=15))]
    pub sse_heartbeat_secs: u64,

    #[command(flatten)]
    pub limits: AbuseLimits,

    /// How long a graceful shutdown waits for in-flight requests.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    pub shutdown_timeout_secs: u64,
}

/// The request rate limits' default, per client IP and per user: the
/// seed's figure for a deployment.
pub const DEFAULT_RATE_LIMIT_RPS: u32 = 10;

/// Limits against abusive clients (docs/CONTRACT.md, "Abuse limits"). All
/// are on by default, as a deployment wants them: the request rate limits
/// at 10 per second per IP and per user. 0 turns any of them off, and every
/// bundled test and load run that drives many users from one IP says so
/// (`OFF_FLAGS`, or the two rate flags).
#[derive(Debug, Clone, clap::Args)]
pub struct AbuseLimits {
    /// Requests per second allowed per client IP (0: no limit). Behind a
    /// proxy every client has the proxy's address: limit per IP there.
    #[arg(long, env = "RATE_LIMIT_RPS", default_value_t = DEFAULT_RATE_LIMIT_RPS)]
    pub rate_limit_rps: u32,

    /// Requests per second allowed per user (the token's user, or the
    /// userId of enter and the points calls; 0: no limit).
    #[arg(long, env = "USER_RATE_LIMIT_RPS", default_value_t = DEFAULT_RATE_LIMIT_RPS)]
    pub user_rate_limit_rps: u32,

    /// A connection that has not sent a whole request head this long after
    /// it opened, or after its previous response (an idle keep-alive), is
    /// closed (slow-header clients). Milliseconds; 0: no limit.
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 30_000)]
    pub header_read_timeout_ms: u64,

    /// Largest request head (request line and headers) read, in bytes
    /// (at least 8192, hyper's floor); a larger one is answered 431 and its
    /// connection closed.
    #[arg(long, env = "MAX_HEADER_BYTES", default_value_t = 16_384,
          value_parser = clap::value_parser!(u64).range(8192..=1_048_576))]
    pub max_header_bytes: u64,

    /// A request body not received whole within this is refused (400).
    /// Milliseconds; 0: no limit.
    #[arg(long, env = "BODY_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_read_timeout_ms: u64,

    /// Connections served at once; one more is answered 503 and closed
    /// (0: no cap).
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,

    /// SSE streams open at once, in total; one more is 503 (0: no cap).
    #[arg(long, env = "MAX_SSE_STREAMS", default_value_t = 10_000)]
    pub max_sse_streams: usize,

    /// SSE streams open at once per queue token; one more is 429 (0: no cap).
    #[arg(long, env = "MAX_SSE_PER_TOKEN", default_value_t = 4)]
    pub max_sse_per_token: usize,
}

impl AbuseLimits {
    /// Every limit off: what load runs that measure the server pass.
    pub const OFF_FLAGS: [&'static str; 14] = [
        "--rate-limit-rps",
        "0",
        "--user-rate-limit-rps",
        "0",
        "--header-read-timeout-ms",
        "0",
        "--body-read-timeout-ms",
        "0",
        "--max-connections",
        "0",
        "--max-sse-streams",
        "0",
        "--max-sse-per-token",
        "0",
    ];
}

/// Deliberate defects, each a negative control the verifier must catch.
/// Never for real use; the server warns loudly at start when one is on.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NegativeControls {
    /// NEGATIVE CONTROL ONLY: make the reserve path read the stock, yield,
    /// then write, so that concurrent buyers over-sell.
    #[arg(long = "unsafe-race", env = "UNSAFE_RACE")]
    pub race: bool,

    /// NEGATIVE CONTROL ONLY: admit the newest waiting entry first (LIFO),
    /// breaking FIFO fairness.
    #[arg(long = "unsafe-fifo", env = "UNSAFE_FIFO")]
    pub fifo: bool,

    /// NEGATIVE CONTROL ONLY: make a seat hold read the seat, yield, then
    /// write, so that two users hold one seat.
    #[arg(long = "unsafe-hold", env = "UNSAFE_HOLD")]
    pub hold: bool,

    /// NEGATIVE CONTROL ONLY: let SSE streams show positions that go up.
    #[arg(long = "unsafe-sse", env = "UNSAFE_SSE")]
    pub sse: bool,

    /// NEGATIVE CONTROL ONLY: accept a used (DONE) queue token for another
    /// purchase.
    #[arg(long = "unsafe-token-reuse", env = "UNSAFE_TOKEN_REUSE")]
    pub token_reuse: bool,

    /// NEGATIVE CONTROL ONLY: admit up to twice activeCapacity.
    #[arg(long = "unsafe-capacity", env = "UNSAFE_CAPACITY")]
    pub capacity: bool,

    /// NEGATIVE CONTROL ONLY: let a WAITING token buy.
    #[arg(long = "unsafe-early-buy", env = "UNSAFE_EARLY_BUY")]
    pub early_buy: bool,

    /// NEGATIVE CONTROL ONLY: show a held seat AVAILABLE (and holdable)
    /// after half its hold time, while the hold is still in force.
    #[arg(long = "unsafe-early-release", env = "UNSAFE_EARLY_RELEASE")]
    pub early_release: bool,

    /// NEGATIVE CONTROL ONLY: a payment retried with its Idempotency-Key
    /// after it completed is charged again, as a new payment.
    #[arg(long = "unsafe-double-charge", env = "UNSAFE_DOUBLE_CHARGE")]
    pub double_charge: bool,

    /// NEGATIVE CONTROL ONLY: a payment debits one point more than the
    /// price it reports.
    #[arg(long = "unsafe-balance", env = "UNSAFE_BALANCE")]
    pub balance: bool,

    /// NEGATIVE CONTROL ONLY: admission goes on while the operator has
    /// paused it (the waiting are still told it is paused).
    #[arg(long = "unsafe-pause", env = "UNSAFE_PAUSE")]
    pub pause: bool,
}

impl NegativeControls {
    /// Controls that live in a backend (the SSE one is in the HTTP layer);
    /// only the embedded backend has them.
    pub fn any_backend_control(&self) -> bool {
        self.race
            || self.fifo
            || self.hold
            || self.token_reuse
            || self.capacity
            || self.early_buy
            || self.early_release
            || self.double_charge
            || self.balance
            || self.pause
    }
}

/// Hidden hooks that let failure tests break the shared stack's paths.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TestHooks {
    /// TEST HOOK: skip the Kafka send after the reserve script accepted a
    /// reservation (the path between Redis and Kafka "killed"); the
    /// reconciler must re-publish it.
    #[arg(long = "debug-drop-publish", hide = true)]
    pub drop_publish: bool,

    /// TEST HOOK: hold each persistence batch this long before writing it,
    /// so an instance can be killed mid-consumption.
    #[arg(long = "debug-persist-delay-ms", hide = true, default_value_t = 0)]
    pub persist_delay_ms: u64,

    /// TEST HOOK: skip the Kafka send of seat-map events right after their
    /// commit (the send "failed"); the outbox relay must send them.
    #[arg(long = "debug-drop-seat-events", hide = true)]
    pub drop_seat_events: bool,

    /// TEST HOOK: run no outbox relay, so a seat event whose first send
    /// failed never reaches its topic (the control that shows check 2 can
    /// report seat events lost).
    #[arg(long = "debug-no-outbox-relay", hide = true)]
    pub no_outbox_relay: bool,

    /// TEST HOOK: never detect nor rebuild a Redis that lost its data, so
    /// an event Redis lost stays lost (`404`) while PostgreSQL has its
    /// sales (the control that shows the faults suite catches it).
    #[arg(long = "debug-no-redis-rebuild", hide = true)]
    pub no_redis_rebuild: bool,

    /// TEST HOOK: acknowledge a reservation as soon as the Redis primary
    /// ran its script, without waiting for a replica (`WAIT`), so a
    /// failover can lose acknowledged decrements (the control that shows
    /// the verifier catches it).
    #[arg(long = "debug-no-replica-wait", hide = true)]
    pub no_replica_wait: bool,
}

impl Config {
    pub fn hold_ttl_ms(&self) -> u64 {
        self.hold_ttl.as_millis() as u64
    }
}

/// `300`, `300s`, `1500ms` or `5m`, between 100 ms and 24 h.
fn parse_hold_ttl(s: &str) -> Result<std::time::Duration, String> {
    let (digits, unit_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else {
        (s, 1000)
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 300, 300s, 1500ms or 5m"))?;
    let ms = n.saturating_mul(unit_ms);
    if !(100..=86_400_000).contains(&ms) {
        return Err(format!("{s:?} is outside 100ms ..= 24h"));
    }
    Ok(std::time::Duration::from_millis(ms))
}

pub(crate) fn random_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::{parse_hold_ttl, AbuseLimits, Config};
    use clap::Parser;

    #[test]
    fn off_flags_turn_every_abuse_limit_off() {
        let mut args = vec!["ticket-server"];
        args.extend(AbuseLimits::OFF_FLAGS);
        let limits = Config::try_parse_from(args).unwrap().limits;
        assert_eq!(limits.rate_limit_rps, 0);
        assert_eq!(limits.user_rate_limit_rps, 0);
        assert_eq!(limits.header_read_timeout_ms, 0);
        assert_eq!(limits.body_read_timeout_ms, 0);
        assert_eq!(limits.max_connections, 0);
        assert_eq!(limits.max_sse_streams, 0);
        assert_eq!(limits.max_sse_per_token, 0);
        // Control: the defaults have every limit on, the rate limits at
        // the seed's 10 per second.
        let defaults = Config::try_parse_from(["ticket-server"]).unwrap().limits;
        assert!(defaults.header_read_timeout_ms > 0 && defaults.max_connections > 0);
        assert_eq!(defaults.rate_limit_rps, 10);
        assert_eq!(defaults.user_rate_limit_rps, 10);
    }
    use std::time::Duration;

    #[test]
    fn debug_shows_no_secret() {
        let config = Config::try_parse_from([
            "ticket-server",
            "--admin-token",
            "admin-6f1c",
            "--token-secret",
            "hmac-93ab",
        ])
        .unwrap();
        assert_eq!(config.admin_token.as_deref(), Some("admin-6f1c"));
        assert_eq!(config.token_secret.as_deref(), Some("hmac-93ab"));
        let shown = format!("{config:?}");
        assert!(shown.contains("admin_token: Some(Secret(..))"), "{shown}");
        assert!(
            !shown.contains("admin-6f1c") && !shown.contains("hmac-93ab"),
            "{shown}"
        );
    }

    #[test]
    fn hold_ttl_takes_seconds_or_a_unit() {
        assert_eq!(parse_hold_ttl("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_hold_ttl("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_hold_ttl("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_hold_ttl("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_hold_ttl("50ms").is_err());
        assert!(parse_hold_ttl("25h").is_err());
        assert!(parse_hold_ttl("-1").is_err());
        assert!(parse_hold_ttl("soon").is_err());
    }
}
