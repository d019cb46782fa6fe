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

    #[error("the request body did not arrive within {} s", after.as_secs())]
    BodyTimeout { after: Duration },

    #[error(transparent)]
    Verify(#[from] switchboard_webhooks::VerifyError),

    /// No signature header at all on the unified endpoint, so not even the provider is known.
    #[error(
        "the request carries no signature header (X-Retell-Signature, X-Cal-Signature, X-Cal-Signature-256 or Stripe-Signature); unsigned deliveries are never accepted"
    )]
    Unsigned,

    #[error("{error}")]
    Parse {
        #[from]
        error: switchboard_webhooks::ParseError,
    },

    /// The payload parsed but cannot be routed (e.g. no call id to name the stream).
    #[error(transparent)]
    Intake(#[from] switchboard_intake::IntakeError),

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

    #[error("{path} does not take {method}")]
    MethodNotAllowed { method: String, path: String },

    /// A query or admin request the server cannot take as given.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },

    /// Well-formed, but the aggregate refuses it (e.g. one number in two branches).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },

    #[error(transparent)]
    Store(#[from] StoreError),

    /// The read models cannot answer (file damaged, a query they refuse); the streams are
    /// unaffected.
    #[error("read models: {0}")]
    ReadModels(String),

    /// The read models' database cannot be reached now (PostgreSQL down or out of
    /// connections, SQLite locked past its bound): try again later.
    #[error("read models unavailable: {0}")]
    ReadModelsUnavailable(String),

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
