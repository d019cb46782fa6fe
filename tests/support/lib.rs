//! Helpers shared by the end-to-end tests: the real `switchboard` binary on a temp data dir,
//! spoken to over HTTP on loopback.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const RETELL_SECRET: &str = "retell-e2e-secret";
pub const CALCOM_SECRET: &str = "calcom-e2e-secret";
pub const STRIPE_SECRET: &str = "whsec_e2e_secret";
pub const ADMIN_TOKEN: &str = "admin-e2e-token";

/// The `switchboard` binary, as of the sources under test.
///
/// `cargo test --workspace` builds it (crates/cli has integration tests), but running only
/// this package would use whatever binary an earlier build left; so make sure once per test
/// process that it is current (a no-op when it is).
pub fn switchboard_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test executable path");
            // target/<profile>/deps/<test> → target/<profile>/switchboard
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("test binary lives in target/<profile>/deps");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build.args([
                "build",
                "-q",
                "-p",
                "switchboard-cli",
                "--bin",
                "switchboard",
            ]);
            // Build the profile this test was built with, so the binary run is the one built.
            if profile_dir
                .file_name()
                .is_some_and(|name| name == "release")
            {
                build.arg("--release");
            }
            let status = build.status().expect("run cargo build");
            assert!(status.success(), "cargo build of switchboard failed");
            profile_dir.join("switchboard")
        })
        .clone()
}

/// A running `switchboard serve`, killed when dropped.
pub struct TestServer {
    pub child: Child,
    pub base_url: String,
    pub data_dir: PathBuf,
    logs: mpsc::Receiver<String>,
}

pub struct ServerOptions {
    pub data_dir: PathBuf,
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl ServerOptions {
    pub fn new(data_dir: &Path) -> Self {
        ServerOptions {
            data_dir: data_dir.to_owned(),
            extra_args: Vec::new(),
            env: vec![
                ("SWITCHBOARD_RETELL_SECRETS".into(), RETELL_SECRET.into()),
                ("SWITCHBOARD_CALCOM_SECRETS".into(), CALCOM_SECRET.into()),
                ("SWITCHBOARD_STRIPE_SECRETS".into(), STRIPE_SECRET.into()),
                ("SWITCHBOARD_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
            ],
        }
    }
}

impl TestServer {
    /// Starts the server on an ephemeral port and waits until it says where it listens.
    pub fn start(options: ServerOptions) -> TestServer {
        let mut command = switchboard_command();
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&options.data_dir)
            .args(&options.extra_args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &options.env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn switchboard serve");
        let (tx, logs) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let tx_err = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx_err.send(line);
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        let base_url = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match logs.recv_timeout(left) {
                Ok(line) => match line.strip_prefix("switchboard listening on ") {
                    Some(addr) => break Some(addr.trim().to_owned()),
                    None => seen.push(line),
                },
                Err(_) => break None,
            }
        };
        let mut server = TestServer {
            child,
            base_url: base_url.clone().unwrap_or_default(),
            data_dir: options.data_dir,
            logs,
        };
        if base_url.is_none() {
            server.kill();
            panic!(
                "switchboard did not start; it printed:\n{}",
                seen.join("\n")
            );
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Lines the server printed since the last call.
    pub fn drain_logs(&self) -> Vec<String> {
        self.logs.try_iter().collect()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
        self.child.wait().expect("wait for switchboard")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that never reuses a dead connection across server restarts.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// The server's `/metrics` text.
pub async fn metrics_text(client: &reqwest::Client, server: &TestServer) -> String {
    client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The `switchboard` binary, taking its store and configuration from its arguments only (not
/// from the environment the tests run in).
pub fn switchboard_command() -> Command {
    let mut command = Command::new(switchboard_bin());
    command
        .env_remove("SWITCHBOARD_STORE")
        .env_remove("SWITCHBOARD_CONFIG");
    command
}

/// Runs a `switchboard` command to its end; fails the test with its stderr unless it
/// succeeded, and returns its stdout.
pub fn output_of(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A Retell webhook `body` for `url`, signed now with [`RETELL_SECRET`].
pub fn retell_post(client: &reqwest::Client, url: &str, body: &str) -> reqwest::RequestBuilder {
    signed_post(
        client,
        url,
        switchboard_webhooks::Scheme::RetellDocumented,
        RETELL_SECRET,
        body.as_bytes(),
        now_ms(),
    )
}

/// A POST of `body` to `url` carrying the headers `scheme` signs it with, as a provider
/// holding `secret` would send it at `at_ms` (milliseconds since the epoch).
pub fn signed_post(
    client: &reqwest::Client,
    url: &str,
    scheme: switchboard_webhooks::Scheme,
    secret: &str,
    body: &[u8],
    at_ms: i64,
) -> reqwest::RequestBuilder {
    let secret = switchboard_webhooks::Secret::new(secret);
    let mut request = client.post(url).body(body.to_vec());
    for (name, value) in switchboard_webhooks::sign(scheme, &secret, body, at_ms) {
        request = request.header(name, value);
    }
    request
}

/// Milliseconds since the epoch: when a delivery signed now says it was sent.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
