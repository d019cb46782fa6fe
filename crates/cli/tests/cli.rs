//! The `switchboard` binary's commands that need no server: help, sign and verify.

use std::process::{Command, Output};

fn switchboard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .env_remove("SWITCHBOARD_CONFIG")
        .output()
        .expect("run switchboard")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_command_has_help() {
    for command in [
        "serve", "rebuild", "sign", "send", "verify", "export", "events",
    ] {
        let out = switchboard(&[command, "--help"]);
        assert!(
            out.status.success(),
            "{command} --help: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stdout).contains("Usage"), "{command}");
    }
}

#[test]
fn signed_headers_verify_and_a_wrong_secret_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.json");
    // A body ending in a newline: the signature covers it.
    std::fs::write(
        &body,
        b"{\"event\":\"call_started\",\"call\":{\"call_id\":\"c1\"}}\n",
    )
    .unwrap();
    let body = body.to_str().unwrap();

    let signed = switchboard(&[
        "sign",
        "--provider",
        "stripe",
        "--secret",
        "whsec_test",
        body,
    ]);
    assert!(signed.status.success(), "{}", text(&signed.stderr));
    let header = text(&signed.stdout).trim().to_owned();
    assert!(header.starts_with("Stripe-Signature: t="), "{header}");

    let ok = switchboard(&[
        "verify",
        "--provider",
        "stripe",
        "--secret",
        "whsec_test",
        "--header",
        &header,
        body,
    ]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).starts_with("valid"),
        "{}",
        text(&ok.stdout)
    );

    // The same secret without its whsec_ prefix: refused, and the diagnosis says why without
    // printing the secret.
    let bad = switchboard(&[
        "verify",
        "--provider",
        "stripe",
        "--secret",
        "test",
        "--header",
        &header,
        body,
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let report = text(&bad.stderr);
    assert!(report.contains("invalid_signature"), "{report}");
    assert!(
        report.contains("whsec_"),
        "the diagnosis names the missing prefix: {report}"
    );
}

#[test]
fn a_missing_header_and_a_stale_one_say_which() {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(&body, b"{}").unwrap();
    let body = body.to_str().unwrap();
    let missing = switchboard(&[
        "verify",
        "--provider",
        "retell",
        "--secret",
        "s",
        "--header",
        "Content-Type: application/json",
        body,
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("missing_signature"),
        "{}",
        text(&missing.stderr)
    );

    let signed = switchboard(&[
        "sign",
        "--provider",
        "retell",
        "--scheme",
        "sdk",
        "--secret",
        "key_abc",
        body,
    ]);
    let header = text(&signed.stdout).trim().to_owned();
    // Verify as if an hour later.
    let later = (chrono_now_s() + 3600).to_string();
    let stale = switchboard(&[
        "verify",
        "--provider",
        "retell",
        "--secret",
        "key_abc",
        "--header",
        &header,
        "--at",
        &later,
        body,
    ]);
    assert_eq!(stale.status.code(), Some(1));
    assert!(
        text(&stale.stderr).contains("stale_timestamp"),
        "{}",
        text(&stale.stderr)
    );
}

#[test]
fn an_unknown_scheme_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(&body, b"{}").unwrap();
    let out = switchboard(&[
        "sign",
        "--provider",
        "stripe",
        "--scheme",
        "sdk",
        "--secret",
        "whsec_x",
        body.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("documented"),
        "{}",
        text(&out.stderr)
    );
}

fn chrono_now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
