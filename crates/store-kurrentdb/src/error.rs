//! How the client's failures become [`StoreError`]s. Pure, so the split is unit-tested.
//!
//! The split matters to callers: `Unavailable` means "nothing was acknowledged, retry later"
//! (the server answers 503 and the provider redelivers); what a human must fix (refused
//! credentials, a deleted stream, an unsupported server, a `MaxAppendSize` below what the
//! service lets in) is `Backend` with a message naming the problem; an append KurrentDB
//! refuses for its content otherwise is `InvalidAppend`. Wrong expected versions never get
//! here: `append.rs` reads the stream again and reports the version it finds. Messages name
//! the server without its password.

use kurrentdb::Error;
// The client reports unmapped gRPC failures with tonic's status code.
use switchboard_store::StoreError;
use tonic::Code;

/// The server a store talks to, as messages name it: the URL without user, password or
/// query (`kurrentdb://host:2113`).
pub fn describe(url: &str) -> String {
    let url = without_credentials(url);
    let (scheme, rest) = url.split_once("://").unwrap_or(("kurrentdb", &url));
    let hosts = rest.split(['?', '/']).next().unwrap_or_default();
    format!("{scheme}://{hosts}")
}

/// The URL with its `user:password@` part taken out, everything else as it was.
pub fn without_credentials(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let authority_end = rest.find(['?', '/']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let hosts = authority
        .rsplit_once('@')
        .map_or(authority, |(_, hosts)| hosts);
    format!("{scheme}{hosts}{tail}")
}

/// Maps a failure met while talking to `target` (see [`describe`]).
pub fn from_client(target: &str, error: &Error) -> StoreError {
    match error {
        Error::ServerError(_)
        | Error::ConnectionClosed
        | Error::GrpcConnectionError(_)
        | Error::DeadlineExceeded
        | Error::NotLeaderException(_) => {
            StoreError::Unavailable(format!("KurrentDB {target}: {error}"))
        }
        Error::Grpc { code, message } if transient(*code) => {
            StoreError::Unavailable(format!("KurrentDB {target}: {message} ({code:?})"))
        }
        // The server's own limit, below what `--max-body` lets through: the delivery is
        // fine and the server is misconfigured. A 500 keeps the provider retrying until the
        // operator raises the limit; a 4xx would have it give the delivery up.
        Error::Grpc { code, message }
            if *code == Code::InvalidArgument && over_max_append_size(message) =>
        {
            StoreError::Backend(format!(
                "KurrentDB {target} refused an append over its MaxAppendSize ({message}): raise \
                 the server's MaxAppendSize above one whole append (the raw delivery, up to \
                 twice --max-body plus 1 MiB, with its events; 16 MiB is ample by default)"
            ))
        }
        Error::Grpc { code, message } if *code == Code::InvalidArgument => {
            StoreError::InvalidAppend(format!("KurrentDB {target} refused the append: {message}"))
        }
        Error::AccessDenied => StoreError::Backend(format!(
            "KurrentDB {target} denied access: check the user and password in the URL \
             and that the user may read $all and write the streams"
        )),
        Error::ResourceDeleted => StoreError::Backend(format!(
            "KurrentDB {target}: the stream was deleted; Switchboard never deletes streams"
        )),
        Error::UnsupportedFeature => StoreError::Backend(format!(
            "KurrentDB {target}: the server does not support an operation the store needs \
             (filtered $all reads need EventStoreDB 20.6 or later)"
        )),
        other => StoreError::Backend(format!("KurrentDB {target}: {other}")),
    }
}

/// The server's "Maximum Append Size of N Exceeded." The client drops the exception's type, so
/// the text is all there is; matched loosely in case a version rewords it.
fn over_max_append_size(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("append size") || message.contains("maxappendsize")
}

/// gRPC codes after which nothing was written and the same request may succeed later.
fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::ResourceExhausted | Code::Aborted | Code::Cancelled
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_never_shows_credentials() {
        assert_eq!(
            describe("kurrentdb://admin:changeit@db:2113?tls=false"),
            "kurrentdb://db:2113"
        );
        assert_eq!(
            describe("esdb+discover://a:1,b:2/?tls=true"),
            "esdb+discover://a:1,b:2"
        );
        assert_eq!(describe("kdb://db"), "kdb://db");
        assert_eq!(
            without_credentials("kurrentdb://admin:p@ss@a:1,b:2?tls=false&x=/y"),
            "kurrentdb://a:1,b:2?tls=false&x=/y"
        );
        assert_eq!(without_credentials("esdb://db:2113"), "esdb://db:2113");
    }

    #[test]
    fn trouble_with_the_server_is_unavailable() {
        for error in [
            Error::ServerError("Internal".into()),
            Error::ConnectionClosed,
            Error::DeadlineExceeded,
            Error::GrpcConnectionError(kurrentdb::GrpcConnectionError::MaxDiscoveryAttemptReached(
                10,
            )),
            Error::Grpc {
                code: Code::Unavailable,
                message: "connection refused".into(),
            },
            Error::Grpc {
                code: Code::ResourceExhausted,
                message: "busy".into(),
            },
        ] {
            let mapped = from_client("kurrentdb://db:2113", &error);
            assert!(
                matches!(&mapped, StoreError::Unavailable(m) if m.contains("kurrentdb://db:2113")),
                "{error:?} became {mapped:?}"
            );
            assert!(mapped.is_transient());
        }
    }

    #[test]
    fn what_a_human_must_fix_is_a_backend_error_that_says_what() {
        for (error, says) in [
            (Error::AccessDenied, "denied access"),
            (Error::ResourceDeleted, "deleted"),
            (Error::UnsupportedFeature, "does not support"),
            (Error::InternalParsingError("bad frame".into()), "bad frame"),
        ] {
            let mapped = from_client("kurrentdb://db:2113", &error);
            assert!(
                matches!(&mapped, StoreError::Backend(m) if m.contains(says)),
                "{error:?} became {mapped:?}"
            );
            assert!(!mapped.is_transient());
        }
    }

    #[test]
    fn an_append_over_the_servers_limit_is_the_operators_to_fix_not_the_providers() {
        let mapped = from_client(
            "kurrentdb://db:2113",
            &Error::Grpc {
                code: Code::InvalidArgument,
                message: "Maximum Append Size of 1048576 Exceeded.".into(),
            },
        );
        assert!(
            matches!(&mapped, StoreError::Backend(m)
                if m.contains("Maximum Append Size") && m.contains("raise the server's MaxAppendSize")),
            "{mapped:?}"
        );
    }

    #[test]
    fn another_argument_the_server_refuses_is_an_invalid_append() {
        let mapped = from_client(
            "kurrentdb://db:2113",
            &Error::Grpc {
                code: Code::InvalidArgument,
                message: "Invalid stream name".into(),
            },
        );
        assert!(
            matches!(&mapped, StoreError::InvalidAppend(m) if m.contains("Invalid stream name")),
            "{mapped:?}"
        );
    }
}
