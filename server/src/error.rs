//! The one error type of the server and its mapping onto the contract.
//!
//! Every failure a request can meet is a variant here; `status` and `code`
//! are the only place that decides what a client sees, so nothing internal
//! (backend names, driver messages) leaks into a response body.

use hyper::StatusCode;

/// A contract error: each variant is one row of the contract's error table.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    NotActive(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("requested {requested}, {remaining} left")]
    SoldOut { requested: u32, remaining: u64 },
    #[error("the per-user limit is {limit}; this user already holds {held}")]
    LimitExceeded { limit: u32, held: u32 },
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    SeatTaken(String),
    #[error("{0}")]
    HoldExpired(String),
    #[error("balance {balance} is below the price {price}")]
    InsufficientPoints { balance: u64, price: u64 },
    #[error("request body is larger than 16 KiB")]
    PayloadTooLarge,
    #[error("rate limit reached, retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0} is unavailable; nothing was applied")]
    Unavailable(&'static str),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// A bug or an unexpected backend failure. The detail is logged, never sent.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::NotActive(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::SoldOut { .. }
            | Error::LimitExceeded { .. }
            | Error::AlreadyExists(_)
            | Error::SeatTaken(_) => StatusCode::CONFLICT,
            Error::HoldExpired(_) => StatusCode::GONE,
            Error::InsufficientPoints { .. } => StatusCode::PAYMENT_REQUIRED,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The contract's machine-readable code (`error` field of the body).
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "BAD_REQUEST",
            Error::Unauthorized(_) => "UNAUTHORIZED",
            Error::NotActive(_) => "NOT_ACTIVE",
            Error::NotFound(_) => "NOT_FOUND",
            Error::SoldOut { .. } => "SOLD_OUT",
            Error::LimitExceeded { .. } => "LIMIT_EXCEEDED",
            Error::AlreadyExists(_) => "ALREADY_EXISTS",
            Error::SeatTaken(_) => "SEAT_TAKEN",
            Error::HoldExpired(_) => "HOLD_EXPIRED",
            Error::InsufficientPoints { .. } => "INSUFFICIENT_POINTS",
            Error::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Error::RateLimited { .. } => "RATE_LIMITED",
            Error::Unavailable(_) => "UNAVAILABLE",
            Error::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Error::Internal(_) => "INTERNAL",
        }
    }

    pub fn bad_request(msg: impl Into<String>) -> Self {
        Error::BadRequest(msg.into())
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        Error::NotFound(msg.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
