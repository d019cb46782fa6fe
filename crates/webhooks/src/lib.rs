//! Provider webhooks for Switchboard: signature schemes and payload types. Pure: no IO, and no
//! clock reads — the current time is a parameter.
//!
//! ```
//! use switchboard_webhooks::{Provider, Scheme, Secret, detect_provider, parse, sign, verify};
//!
//! let secret = Secret::new("whsec_example");
//! let body = br#"{"id":"evt_1","object":"event","type":"customer.created","created":1700000000,"data":{"object":{}}}"#;
//! let now_unix_ms = 1_700_000_000_000;
//! let headers = sign(Scheme::Stripe, &secret, body, now_unix_ms);
//!
//! let provider = detect_provider(&headers).expect("signed");
//! let verified = verify(provider, &headers, body, &[secret], now_unix_ms).expect("valid");
//! assert_eq!(verified.scheme, Scheme::Stripe);
//!
//! let delivery = parse(provider, body).expect("well-formed");
//! assert!(delivery.is_unknown());
//! assert_eq!(delivery.dedupe_key(body), "stripe:evt_1");
//! ```

mod dedupe;
pub mod diagnosis;
mod error;
mod headers;
pub mod payload;
mod provider;
pub mod schema;
mod secret;
mod signature;

pub use diagnosis::{Diagnosis, Finding, diagnose};
pub use error::{HeaderPart, ParseError, Skew, VerifyError};
pub use headers::HeaderLookup;
pub use payload::{Delivery, parse, parse_retell_function, parse_retell_function_called};
pub use provider::{Provider, Scheme, UnknownProvider, UnknownScheme};
pub use secret::{Keyring, Secret};
pub use signature::{Verified, detect_provider, sign, verify};

/// The header names of every scheme, for callers that print or forward them.
pub mod header_names {
    pub use crate::signature::calcom::{
        APP_HEADER as CALCOM_APP, DOCUMENTED_HEADER as CALCOM, TIMESTAMP_HEADER as CALCOM_TIMESTAMP,
    };
    pub use crate::signature::retell::HEADER as RETELL;
    pub use crate::signature::stripe::HEADER as STRIPE;
}
