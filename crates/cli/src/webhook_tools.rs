//! `switchboard sign | send | verify`: the provider's side of a delivery, for testing an
//! installation and for answering "why does this signature not verify?".

use std::path::{Path, PathBuf};

use clap::Args;
use switchboard_webhooks::{Provider, Scheme, Secret, diagnose, sign, verify};

use crate::CliError;

#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    /// retell, calcom or stripe.
    #[arg(long)]
    provider: Provider,
    /// The signing secret (for Retell's SDK scheme: the account's API key).
    #[arg(long)]
    secret: String,
    /// documented (default), sdk (Retell) or app (Cal.com).
    #[arg(long)]
    scheme: Option<String>,
    /// The body to sign, byte for byte.
    file: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// The full endpoint URL, e.g. http://127.0.0.1:8080/api/retell/webhook.
    #[arg(long)]
    url: String,
    #[arg(long)]
    provider: Provider,
    #[arg(long)]
    secret: String,
    #[arg(long)]
    scheme: Option<String>,
    /// One or more bodies, sent in order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    #[arg(long)]
    provider: Provider,
    /// A configured secret; repeat for several (rotation).
    #[arg(long, required = true)]
    secret: Vec<String>,
    /// A received header as `Name: value`; repeat for several.
    #[arg(long = "header", required = true)]
    headers: Vec<String>,
    /// Verify against this unix time in seconds instead of now (for captured deliveries).
    #[arg(long)]
    at: Option<i64>,
    /// The received body, byte for byte.
    file: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
}

fn scheme(provider: Provider, name: Option<&str>) -> Result<Scheme, CliError> {
    Scheme::for_provider(provider, name).map_err(|e| CliError::Usage(e.to_string()))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn run_sign(args: SignArgs) -> Result<(), CliError> {
    let body = read(&args.file)?;
    let scheme = scheme(args.provider, args.scheme.as_deref())?;
    for (name, value) in sign(scheme, &Secret::new(args.secret), &body, now_ms()) {
        println!("{name}: {value}");
    }
    Ok(())
}

pub async fn run_send(args: SendArgs) -> Result<(), CliError> {
    let scheme = scheme(args.provider, args.scheme.as_deref())?;
    let secret = Secret::new(args.secret);
    let client = reqwest::Client::new();
    let mut failures = 0;
    for file in &args.files {
        let body = read(file)?;
        let mut request = client
            .post(&args.url)
            .header("content-type", "application/json")
            .body(body.clone());
        for (name, value) in sign(scheme, &secret, &body, now_ms()) {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                let detail = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|json| {
                        json.pointer("/error/code")
                            .or_else(|| json.get("status"))
                            .and_then(|v| v.as_str().map(str::to_owned))
                    })
                    .unwrap_or_default();
                println!("{} {} {detail}", file.display(), status.as_u16());
                // 409 is a duplicate: already recorded, not a failure.
                if !(status.is_success() || status.as_u16() == 409) {
                    failures += 1;
                }
            }
            Err(e) => {
                println!("{} error {e}", file.display());
                failures += 1;
            }
        }
    }
    if failures > 0 {
        return Err(CliError::Failed(format!(
            "{failures} of {} deliveries were not accepted",
            args.files.len()
        )));
    }
    Ok(())
}

pub fn run_verify(args: VerifyArgs) -> Result<(), CliError> {
    let body = read(&args.file)?;
    let headers = args
        .headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(name, value)| (name.trim().to_owned(), value.trim().as_bytes().to_vec()))
                .ok_or_else(|| CliError::Usage(format!("--header {h:?}: expected `Name: value`")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let secrets: Vec<Secret> = args.secret.into_iter().map(Secret::new).collect();
    let now = args.at.map_or_else(now_ms, |s| s * 1000);
    match verify(args.provider, &headers, &body, &secrets, now) {
        Ok(verified) => {
            println!(
                "valid: {} signature, secret #{}",
                verified.scheme,
                verified.secret_index + 1
            );
            Ok(())
        }
        Err(error) => {
            let mut report = format!("invalid ({}): {error}", error.code());
            let diagnosis = match error.diagnosis() {
                Some(d) => d.clone(),
                None => diagnose(args.provider, &headers, &body, &secrets),
            };
            for finding in &diagnosis.findings {
                report.push_str(&format!("\n  - {finding}"));
            }
            if diagnosis.is_empty() && error.diagnosis().is_some() {
                report.push_str(
                    "\n  - no known cause fits: the secret is probably not the one the sender uses",
                );
            }
            Err(CliError::Failed(report))
        }
    }
}
