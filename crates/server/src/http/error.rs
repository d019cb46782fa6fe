//! The one place errors become HTTP: status, `{"error": {"code", "message"}}`, and headers.
//! Internals (SQL, file paths, secrets) never reach the body; they go to the log.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use switchboard_store::StoreError;

use crate::Error;

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Config(_) | Error::Internal(_) | Error::ReadModels(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Error::ReadModelsUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Error::BodyUnreadable(_) | Error::BadRequest { .. } | Error::Parse { .. } => {
                StatusCode::BAD_REQUEST
            }
            Error::Intake(error) => match error {
                switchboard_intake::IntakeError::MissingAvailabilityAnswer => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
                _ => StatusCode::BAD_REQUEST,
            },
            Error::Verify(_) | Error::Unsigned => StatusCode::UNAUTHORIZED,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::Store(e) => match e {
                // The store's limit is sized so that every body within `--max-body` fits
                // (config::max_event_bytes); an event over it all the same is too large, like
                // a body over `--max-body`, not malformed.
                StoreError::EventTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                StoreError::InvalidAppend(_) => StatusCode::BAD_REQUEST,
                // Contention that outlasted the retries: nothing was written, try again.
                StoreError::WrongExpectedVersion { .. }
                | StoreError::Unavailable(_)
                | StoreError::Closed => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Error::Config(_) | Error::Internal(_) | Error::ReadModels(_) => "internal_error",
            Error::ReadModelsUnavailable(_) => "read_models_unavailable",
            Error::BodyTooLarge { .. } => "payload_too_large",
            Error::BodyTimeout { .. } => "request_timeout",
            Error::BodyUnreadable(_) => "malformed_payload",
            Error::Intake(error) => error.code(),
            Error::Parse { error } => error.code(),
            Error::Verify(error) => error.code(),
            Error::Unsigned => "missing_signature",
            Error::RateLimited { .. } => "rate_limited",
            Error::Unauthorized { code, .. }
            | Error::BadRequest { code, .. }
            | Error::Unprocessable { code, .. } => code,
            Error::Forbidden(_) => "forbidden",
            Error::NotFound { .. } => "not_found",
            Error::MethodNotAllowed { .. } => "method_not_allowed",
            Error::Store(e) => match e {
                StoreError::EventTooLarge { .. } => "payload_too_large",
                StoreError::InvalidAppend(_) => "malformed_payload",
                StoreError::WrongExpectedVersion { .. } => "store_contention",
                StoreError::Unavailable(_) | StoreError::Closed => "store_unavailable",
                _ => "internal_error",
            },
        }
    }

    /// The JSON path of the value a malformed payload lacks or got wrong.
    fn json_path(&self) -> Option<&str> {
        match self {
            Error::Parse { error } => error.path(),
            Error::Intake(error) => error.path(),
            _ => None,
        }
    }

    /// What the client may read. Server-side failures say what to do, not what broke inside.
    pub fn public_message(&self) -> String {
        match self.status() {
            StatusCode::INTERNAL_SERVER_ERROR => {
                "internal error; nothing was recorded, retry later".to_owned()
            }
            StatusCode::SERVICE_UNAVAILABLE => match self {
                Error::ReadModelsUnavailable(_) => {
                    "the read models' database does not answer now; nothing was recorded, retry later"
                }
                _ => "the event store cannot take this delivery now; nothing was recorded, retry later",
            }
            .to_owned(),
            _ => self.to_string(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, code = self.code(), "request failed");
        }
        let mut error = json!({ "code": self.code(), "message": self.public_message() });
        if let Some(path) = self.json_path() {
            error["path"] = path.into();
        }
        let body = Json(json!({ "error": error }));
        let mut response = (status, body).into_response();
        if let Error::RateLimited { retry_after } = &self {
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        // Every 503 says when to come back: nothing was recorded, and a retry is expected.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}
