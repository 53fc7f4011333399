//! What can go wrong inside the shared stack, as one typed error.
//!
//! Background loops (consumers, reconciler, sweepers) log these and retry;
//! request paths turn them into the contract's error with `From`, which is
//! the one place that decides a client sees UNAVAILABLE naming the component
//! (and never a driver's message).

use rdkafka::error::KafkaError;
use tokio_postgres::error::SqlState;
use tracing::warn;

use crate::error::Error;

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("postgres pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("bad postgres configuration: {0}")]
    PoolConfig(String),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("creating topic {topic}: {code}")]
    Topic {
        topic: String,
        code: rdkafka::types::RDKafkaErrorCode,
    },
    #[error("migration {version}: {source}")]
    Migration {
        version: usize,
        source: tokio_postgres::Error,
    },
    /// A Lua script answered something its reply type does not describe.
    #[error("{script} script answered {reply:?}: {source}")]
    Reply {
        script: &'static str,
        reply: String,
        source: serde_json::Error,
    },
    /// Rebuilding a lost Redis from PostgreSQL and the broker could not
    /// finish (see [`super::rebuild`]).
    #[error("rebuilding Redis: {0}")]
    Rebuild(String),
}

impl StackError {
    /// The SQLSTATE, when PostgreSQL answered.
    pub fn sql_state(&self) -> Option<&SqlState> {
        match self {
            StackError::Postgres(e) | StackError::Migration { source: e, .. } => e.code(),
            _ => None,
        }
    }
}

impl From<StackError> for Error {
    fn from(e: StackError) -> Self {
        let component = match &e {
            StackError::Redis(_) | StackError::Rebuild(_) => "Redis",
            StackError::Postgres(_)
            | StackError::Pool(_)
            | StackError::PoolConfig(_)
            | StackError::Migration { .. } => "PostgreSQL",
            StackError::Kafka(_) | StackError::Topic { .. } => "Kafka",
            StackError::Reply { .. } => return Error::Internal(Box::new(e)),
        };
        warn!(error = %e, component, "stack");
        Error::Unavailable(component)
    }
}

// Request paths in this module use `?` on the drivers' errors directly.
impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        StackError::from(e).into()
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        StackError::from(e).into()
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StackError::from(e).into()
    }
}
