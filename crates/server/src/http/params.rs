//! Query parameters several resources share, parsed one way with one set of error codes.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::{Deserialize, DeserializeOwned, Deserializer};

use crate::Error;

/// A query string as `T`, refused in the service's error shape (400 `invalid_query`) rather
/// than axum's plain-text rejection. Parameters given empty (`?tenant_id=&limit=`, as the
/// interface writes its templates) count as absent where `T` uses [`blank_is_absent`].
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(params)) => Ok(Params(params)),
            Err(rejection) => Err(Error::bad_request(
                "invalid_query",
                format!("the query string: {}", rejection.body_text()),
            )),
        }
    }
}

/// `?name=` reads as no `name` at all.
pub fn blank_is_absent<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(deserializer)?;
    Ok(value.filter(|v| !v.trim().is_empty()))
}

/// `limit=N`: `default` when absent; the read models check the upper bound.
pub fn limit(raw: Option<&str>, default: usize) -> Result<usize, Error> {
    match raw {
        None => Ok(default),
        Some(text) => text.trim().parse::<usize>().map_err(|_| {
            Error::bad_request(
                "invalid_limit",
                format!("limit={text:?} is not a whole number"),
            )
        }),
    }
}
