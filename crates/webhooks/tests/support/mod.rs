//! Shared by the integration tests: where the fixtures are.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use switchboard_webhooks::Provider;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixture(provider: Provider, name: &str) -> Vec<u8> {
    let path = repo_root()
        .join("fixtures/providers")
        .join(provider.as_str())
        .join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Every payload fixture of a provider (top-level `*.json`; `responses/` holds answers, not
/// deliveries), sorted by name.
pub fn fixtures(provider: Provider) -> Vec<(String, Vec<u8>)> {
    let dir = repo_root()
        .join("fixtures/providers")
        .join(provider.as_str());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}
