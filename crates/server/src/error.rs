//! The server's one error type. `http::error` maps it to status codes in one place.

use std::time::Duration;

use switchboard_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration the service cannot start with.
    #[error("configuration: {0}")]
    Config(String),

    #[error("request body is over the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },

    #[error("could not read the request body: {0}")]
    BodyUnreadable(String),

    #[error("rate limited: retry in {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },

    /// Missing or unknown bearer token.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },

    /// The token is valid but does not reach this resource (admin only).
    #[error("{0}")]
    Forbidden(String),

    #[error("{what} not found")]
    NotFound { what: String },

    /// A query or admin request the server cannot take as given.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },

    #[error(transparent)]
    Store(#[from] StoreError),

    /// The service is shutting down and takes no new deliveries.
    #[error("shutting down")]
    ShuttingDown,

    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Error::BadRequest {
            code,
            message: message.into(),
        }
    }
}
