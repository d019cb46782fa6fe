//! Why a parsed delivery cannot be routed.

/// The server answers these with `400 malformed_payload` (the path in the body), except
/// [`IntakeError::MissingAvailabilityAnswer`], which is its own bug (500).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    #[error("{path} is missing")]
    MissingField { path: String },
    #[error("{path} is invalid: {reason}")]
    InvalidField { path: String, reason: String },
    /// A `check_availability` call is recorded with the answer the server gave; route it
    /// after computing that answer.
    #[error("a check_availability call needs the server's answer in the routing context")]
    MissingAvailabilityAnswer,
}

impl IntakeError {
    pub fn code(&self) -> &'static str {
        match self {
            IntakeError::MissingField { .. } | IntakeError::InvalidField { .. } => {
                "malformed_payload"
            }
            IntakeError::MissingAvailabilityAnswer => "missing_availability_answer",
        }
    }

    /// The JSON path of the offending value, if there is one.
    pub fn path(&self) -> Option<&str> {
        match self {
            IntakeError::MissingField { path } | IntakeError::InvalidField { path, .. } => {
                Some(path)
            }
            IntakeError::MissingAvailabilityAnswer => None,
        }
    }
}

pub(crate) fn missing(path: &str) -> IntakeError {
    IntakeError::MissingField {
        path: path.to_owned(),
    }
}
