//! Query parameters several resources share, parsed one way with one set of error codes.

use crate::Error;

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
