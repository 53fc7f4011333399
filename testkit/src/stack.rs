//! Whether the real stack (Redis, Kafka, PostgreSQL from
//! `scripts/services.sh`) is there, and the rule when it is not.

/// The variables `scripts/services.sh env` exports.
const VARS: [&str; 3] = ["REDIS_URL", "KAFKA_BROKERS", "POSTGRES_URL"];

/// The real stack's addresses, and a namespace of its own for one test.
#[derive(Debug, Clone)]
pub struct RealStack {
    pub redis_url: String,
    pub kafka_brokers: String,
    pub postgres_url: String,
    /// Fresh for every [`real_stack`] call, so tests sharing one stack
    /// never see each other; instances of one test share it.
    pub namespace: String,
}

/// The real stack from `REDIS_URL`, `KAFKA_BROKERS` and `POSTGRES_URL`, in a
/// fresh namespace. When any of them is unset the test cannot run: under
/// CI (`CI` set, to anything) that fails the test; elsewhere the reason is
/// printed and `None` returned, and the test returns early (a skip).
pub fn real_stack() -> Option<RealStack> {
    if let [Ok(redis_url), Ok(kafka_brokers), Ok(postgres_url)] = VARS.map(std::env::var) {
        return Some(RealStack {
            redis_url,
            kafka_brokers,
            postgres_url,
            namespace: format!("t{:012x}", rand::random::<u64>() >> 16),
        });
    }
    let unset: Vec<&str> = VARS
        .into_iter()
        .filter(|v| std::env::var(v).is_err())
        .collect();
    let unset = unset.join(", ");
    if std::env::var_os("CI").is_some() {
        panic!("the real stack is required under CI ({unset} unset): run `scripts/services.sh start` and export `scripts/services.sh env`");
    }
    eprintln!("skipped: no real stack ({unset} unset; run scripts/services.sh start; eval \"$(scripts/services.sh env)\")");
    None
}

impl RealStack {
    /// The `ticket-server` flags that put an instance on this stack, in
    /// its namespace.
    pub fn flags(&self) -> Vec<String> {
        [
            "--backend",
            "real",
            "--redis-url",
            &self.redis_url,
            "--kafka-brokers",
            &self.kafka_brokers,
            "--postgres-url",
            &self.postgres_url,
            "--namespace",
            &self.namespace,
            "--kafka-partitions",
            "2",
        ]
        .map(str::to_owned)
        .to_vec()
    }
}
