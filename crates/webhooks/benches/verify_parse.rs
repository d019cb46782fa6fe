//! Verify + parse of a ~4 KiB Retell `call_ended`, the hot path of every delivery.
//! Target: ≥ 100,000 deliveries/s per core (≤ 10 µs each).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchboard_webhooks::{Provider, Scheme, Secret, parse, sign, verify};

const NOW: i64 = 1_703_244_423_456;

/// The seed's `call_ended` with its transcript lengthened to bring the body to 4 KiB, the
/// size of a typical short call.
fn call_ended_4k() -> Vec<u8> {
    let seed = include_str!("../../../fixtures/providers/retell/call_ended.json");
    let mut value: serde_json::Value = serde_json::from_str(seed).unwrap();
    let line = "\nKunde: Ja, genau, am Dienstag um halb drei wäre perfekt für mich.";
    let mut transcript = value["call"]["transcript"].as_str().unwrap().to_owned();
    while serde_json::to_vec(&value).unwrap().len() < 4096 - line.len() {
        transcript.push_str(line);
        value["call"]["transcript"] = transcript.clone().into();
    }
    serde_json::to_vec(&value).unwrap()
}

fn bench(c: &mut Criterion) {
    let body = call_ended_4k();
    let secrets = [Secret::new("retell_webhook_secret")];
    let documented = sign(Scheme::RetellDocumented, &secrets[0], &body, NOW);
    let sdk_secrets = [Secret::new("key_0123456789abcdef0123456789")];
    let sdk = sign(Scheme::RetellSdk, &sdk_secrets[0], &body, NOW);

    let mut group = c.benchmark_group(format!("call_ended {} B", body.len()));
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify (documented)", |b| {
        b.iter(|| {
            verify(
                Provider::Retell,
                black_box(&documented),
                black_box(&body),
                &secrets,
                NOW,
            )
            .unwrap()
        })
    });
    group.bench_function("parse", |b| {
        b.iter(|| parse(Provider::Retell, black_box(&body)).unwrap())
    });
    group.bench_function("verify + parse + dedupe key (documented)", |b| {
        b.iter(|| {
            verify(
                Provider::Retell,
                black_box(&documented),
                black_box(&body),
                &secrets,
                NOW,
            )
            .unwrap();
            let delivery = parse(Provider::Retell, black_box(&body)).unwrap();
            delivery.dedupe_key(&body)
        })
    });
    group.bench_function("verify + parse + dedupe key (sdk)", |b| {
        b.iter(|| {
            verify(
                Provider::Retell,
                black_box(&sdk),
                black_box(&body),
                &sdk_secrets,
                NOW,
            )
            .unwrap();
            let delivery = parse(Provider::Retell, black_box(&body)).unwrap();
            delivery.dedupe_key(&body)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
