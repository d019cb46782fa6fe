//! Prometheus metrics. One recorder per process (the `metrics` facade is global), installed
//! on first use so tests that build several apps in one process share it.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder (once) and returns the handle that renders the text format.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".to_owned()),
                    &[
                        0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
                        0.25, 0.5, 1.0, 2.5,
                    ],
                )
                .expect("static bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness); ours still renders.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// A delivery's outcome: `accepted`, `anomaly`, `duplicate`, or the refusal code.
pub fn delivery(provider: &str, outcome: &str) {
    metrics::counter!(
        "switchboard_deliveries_total",
        "provider" => provider.to_owned(),
        "outcome" => outcome.to_owned()
    )
    .increment(1);
}

pub fn verification_failure(provider: &str, reason: &str) {
    metrics::counter!(
        "switchboard_verification_failures_total",
        "provider" => provider.to_owned(),
        "reason" => reason.to_owned()
    )
    .increment(1);
}

pub fn append_latency(elapsed: Duration) {
    metrics::histogram!("switchboard_append_duration_seconds").record(elapsed.as_secs_f64());
}

/// 1 while the projections are paused by trouble they retry after (see /readyz for why).
pub fn projections_paused(paused: bool) {
    metrics::gauge!("switchboard_projections_paused").set(if paused { 1.0 } else { 0.0 });
}

pub fn projection_lag(projection: &str, events_behind: u64) {
    metrics::gauge!("switchboard_projection_lag_events", "projection" => projection.to_owned())
        .set(events_behind as f64);
}
