//! The verifier's flags (clap derive, env fallbacks).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// The checks that can be selected with `--checks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckName {
    /// 1: N buyers race for S items; exactly S/Q succeed.
    Oversell,
    /// 3: admission order against entry order.
    Fifo,
    /// 4: what clients are shown: SSE positions, the active count, estimates.
    Display,
    /// 5: no, forged, waiting, used and foreign tokens are refused.
    Tokens,
    /// 6: the concert seat map: no seat held by two users at once, holds
    /// lapse within TTL + tolerance, no late payment, exact balances.
    Seatmap,
    /// 7: the operator's pause holds admission (places kept, the waiting
    /// told) and the resume admits in entry order. Needs the reference
    /// server's admission controls, so it runs only when named.
    Pause,
    /// 2: nothing lost between Redis, Kafka and PostgreSQL: the races'
    /// reservations and the seat map's events (the reference server's real
    /// stack; needs --redis-url, --kafka-brokers, --postgres-url).
    Stores,
}

/// The embedded target's hold TTL, and what check 6 expects by default.
pub const DEFAULT_HOLD_TTL_MS: u64 = 2000;

/// Verify that a ticketing server does not over-sell, admits fairly and
/// enforces its token rules, through the HTTP contract alone.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "verify",
    version,
    about,
    after_help = "Exit status (a live run and `judge` alike):
  0  every check that ran passed (checks the target cannot run are not applicable)
  1  a check failed: the verdict, verdict.json and junit.xml say which
  2  the run could not be carried out: target unreachable, set-up refused, a
     check named with --checks that the target cannot run, bad options, an
     unreadable history, or a target that answered 429 (its rate limit: raise
     it or turn it off for the run; a throttled run is not judged)"
)]
pub struct Options {
    /// Base URL of the server under test; several (comma-separated or
    /// repeated) spread the buyers over them. Without it, the reference
    /// server is started in process on the embedded backend.
    #[arg(long, env = "VERIFY_TARGET", value_delimiter = ',')]
    pub target: Vec<String>,

    /// Admin bearer token of the target (needed with --target).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Items for sale in the race.
    #[arg(long, default_value_t = 100)]
    pub stock: u64,

    /// Buyers racing for them.
    #[arg(long, default_value_t = 200)]
    pub buyers: usize,

    /// Items each buyer asks for.
    #[arg(long, default_value_t = 1)]
    pub quantity: u32,

    /// Only the race as configured: skip the variants (quantity 2, and a
    /// stock that quantity 2 does not divide).
    #[arg(long)]
    pub no_variants: bool,

    /// Run the races this many times; one failing run fails the verdict.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,

    /// Seconds within which every accepted reservation must read CONFIRMED.
    #[arg(long, default_value_t = 10)]
    pub confirm_deadline: u64,

    /// Wait for admission by polling /queue/status instead of the SSE stream.
    #[arg(long)]
    pub poll: bool,

    /// activeCapacity of the event used by the FIFO and display checks
    /// (small, so admission is staggered).
    #[arg(long, default_value_t = 5)]
    pub fifo_capacity: u32,

    /// Users in the FIFO and display checks.
    #[arg(long, default_value_t = 40)]
    pub queue_users: usize,

    /// Which checks to run [default: oversell,fifo,display,tokens,seatmap,
    /// each where the target can run it]. A check named here that the
    /// target cannot run is an error (exit status 2).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub checks: Vec<CheckName>,

    /// Check 6: users racing for the seats.
    #[arg(long, default_value_t = 200)]
    pub seat_users: usize,

    /// Check 6: seats of the concert's schedule.
    #[arg(long, default_value_t = 50)]
    pub seats: u32,

    /// Check 6: seats most users want (the first ones).
    #[arg(long, default_value_t = 10)]
    pub hot_seats: u32,

    /// Check 6: the target's seat hold TTL in ms (its `--hold-ttl`); the
    /// embedded target is started with it. The check waits this long for
    /// holds to lapse, so give servers under test a short one.
    #[arg(long, default_value_t = DEFAULT_HOLD_TTL_MS)]
    pub hold_ttl_ms: u64,

    /// Check 6: how late after its TTL a hold may lapse, in ms.
    #[arg(long, default_value_t = 1000)]
    pub expiry_tolerance_ms: u64,

    /// Seconds before one request counts as timed out (an `info` outcome).
    #[arg(long, default_value_t = 30)]
    pub request_timeout: u64,

    /// Check 2: the Redis of the reference server's real stack.
    #[arg(long, env = "VERIFY_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Check 2: the Kafka brokers of the reference server's real stack.
    #[arg(long, env = "VERIFY_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// Check 2: the PostgreSQL of the reference server's real stack.
    #[arg(long, env = "VERIFY_POSTGRES_URL")]
    pub postgres_url: Option<String>,

    /// Check 2: the reference server's --namespace.
    #[arg(long, env = "VERIFY_NAMESPACE", default_value = "ticketbench")]
    pub namespace: String,

    /// Check 2: seconds within which every accepted reservation must be in
    /// PostgreSQL, and every committed seat event sent by the server's outbox.
    #[arg(long, default_value_t = 15)]
    pub store_deadline: u64,

    /// Run one shard of the over-selling race, I of N (0-based): the buyers
    /// `buyer-i` with `i % N == I`, against the event of `--run-id`. Only
    /// check oversell runs; the shard writes its history.jsonl without a
    /// verdict: judge every shard's with `verify judge H1 H2 ...`.
    #[arg(long, value_parser = parse_shard, requires = "run_id")]
    pub shard: Option<crate::shard::Shard>,

    /// With --shard: the id every shard of the race is given (the event id
    /// derives from it).
    #[arg(long, requires = "shard")]
    pub run_id: Option<String>,

    /// With --shard: release the buyers at this wall-clock moment (RFC 3339
    /// or Unix seconds), so shards on several machines race together;
    /// without it each shard releases once its own buyers are ACTIVE.
    #[arg(long, requires = "shard", value_parser = parse_start_at)]
    pub start_at: Option<std::time::SystemTime>,

    /// Faults to inject during every race: `KIND[@START][+DURATION]`,
    /// comma-separated, START after the race's release (default 1s),
    /// DURATION until the fault is undone (default 3s), e.g.
    /// `kill-instance@1s+2s,restart-broker@4s+3s`. Kinds: kill-instance,
    /// pause-instance, restart-redis, lose-redis, failover-redis,
    /// restart-postgres, restart-broker, pause-broker. Under a nemesis
    /// buyers retry answers that are not definitive until the recovery
    /// deadline, and the verdict has a fault table.
    #[arg(long, value_delimiter = ',', value_name = "FAULTS")]
    pub nemesis: Vec<crate::nemesis::FaultSpec>,

    /// `KIND='command'`: inject that kind of fault by running the command
    /// (`sh -c`, the phase `start` or `end` as `$1` and in NEMESIS_PHASE)
    /// instead of acting on local processes: for docker compose, Kubernetes.
    /// Repeat it for several kinds.
    #[arg(long = "fault-cmd", value_name = "KIND=COMMAND")]
    pub fault_cmd: Vec<crate::nemesis::FaultCmd>,

    /// The target's server processes (local), for kill-instance and
    /// pause-instance without --fault-cmd; faults take them in turn.
    #[arg(long, value_delimiter = ',')]
    pub instance_pid: Vec<u32>,

    /// The script the nemesis runs to fault the reference stack's services.
    #[arg(
        long,
        env = "VERIFY_SERVICES_SCRIPT",
        default_value = "scripts/services.sh"
    )]
    pub services_script: PathBuf,

    /// Spread the race's purchases over this many ms after the release
    /// (buyer i starts i/N of the way through) instead of all at once.
    #[arg(long, default_value_t = 0)]
    pub release_over_ms: u64,

    /// Under a nemesis: seconds after the last fault's end within which the
    /// target must answer every purchase and token read definitively.
    #[arg(long, default_value_t = 60)]
    pub recovery_deadline: u64,

    /// Where verdict.json, junit.xml and history.jsonl are written.
    #[arg(long, default_value = "verify-out")]
    pub out: PathBuf,

    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do instead of a live run.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Re-judge a recorded run offline from its history.jsonl and print the
    /// verdict (exit status 0 pass, 1 fail, 2 unreadable history); several
    /// (the shards of one race, `--shard I/N`) are merged by wall-clock time
    /// and judged as one.
    Judge {
        /// The history.jsonl a run wrote, or each shard's.
        #[arg(required = true, num_args = 1..)]
        history: Vec<PathBuf>,
        /// Also write verdict.json and junit.xml into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Export the over-selling and queue histories of a recorded run for
    /// Jepsen's Elle (elle-cli), as EDN (see docs/VERIFY.md).
    Export {
        /// The history.jsonl a run wrote.
        history: PathBuf,
        /// The directory to write the exported histories into.
        #[arg(long, default_value = "verify-export")]
        out: PathBuf,
    },
}

/// The checks of a run without `--checks`; those the target cannot run are
/// reported as not applicable.
pub const DEFAULT_CHECKS: [CheckName; 5] = [
    CheckName::Oversell,
    CheckName::Fifo,
    CheckName::Display,
    CheckName::Tokens,
    CheckName::Seatmap,
];

impl CheckName {
    /// The name used in `--checks` and in the verdict.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Oversell => "oversell",
            CheckName::Fifo => "fifo",
            CheckName::Display => "display",
            CheckName::Tokens => "tokens",
            CheckName::Seatmap => "seatmap",
            CheckName::Pause => "pause",
            CheckName::Stores => "stores",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        <CheckName as ValueEnum>::from_str(name, false).ok()
    }
}

impl Options {
    /// The defaults, as if run with no flags (for tests and embedding).
    pub fn defaults() -> Self {
        Options::parse_from(["verify"])
    }

    /// Whether `check` was asked for: named in `--checks`, or (without
    /// it) among the defaults; the stores check whenever its stores are.
    pub fn runs(&self, check: CheckName) -> bool {
        self.selected().contains(&check)
            || (check == CheckName::Stores && self.has_stores() && self.shard.is_none())
    }

    /// The checks asked for: `--checks`, or the defaults; a shard runs
    /// only the over-selling race.
    pub fn selected(&self) -> Vec<CheckName> {
        if self.shard.is_some() {
            vec![CheckName::Oversell]
        } else if self.checks.is_empty() {
            DEFAULT_CHECKS.to_vec()
        } else {
            self.checks.clone()
        }
    }

    /// Whether `check` was named with `--checks` (so the target must be able
    /// to run it).
    pub fn named(&self, check: CheckName) -> bool {
        self.checks.contains(&check)
    }

    /// Whether all three store addresses were given (check 2 then runs).
    pub fn has_stores(&self) -> bool {
        self.redis_url.is_some() && self.kafka_brokers.is_some() && self.postgres_url.is_some()
    }
}

fn parse_shard(s: &str) -> Result<crate::shard::Shard, String> {
    s.parse()
}

fn parse_start_at(s: &str) -> Result<std::time::SystemTime, String> {
    crate::shard::parse_start_at(s)
}
