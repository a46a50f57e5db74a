//! Criterion benchmarks: reading + mapping one typical (~1 MB, Synthea-style) patient
//! bundle, and the pure engine on an in-memory record.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use time::macros::date;
use trd_sentinel::clinical::{assess, Knowledge, Policy};
use trd_sentinel::fhir::read::{Relevance, ResourcePool};

#[path = "support/population.rs"]
mod population;

fn benchmarks(c: &mut Criterion) {
    let knowledge = Knowledge::embedded().expect("knowledge");
    let policy = Policy::default_preset().expect("policy");
    let bundle = population::patient_bundle(7, 1_000_000);
    let as_of = date!(2025 - 06 - 30);

    let mut group = c.benchmark_group("one patient");
    group.throughput(Throughput::Bytes(bundle.len() as u64));
    group.bench_function("read + map (1 MB bundle)", |b| {
        b.iter(|| {
            let mut pool = ResourcePool::new(Relevance::from_knowledge(&knowledge));
            pool.add_json(black_box(&bundle), "bench").expect("reads");
            pool.records()
        })
    });
    group.bench_function("parse-only baseline (serde_json::Value)", |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(&bundle)).expect("json"))
    });
    group.finish();

    let mut pool = ResourcePool::new(Relevance::from_knowledge(&knowledge));
    pool.add_json(&bundle, "bench").expect("reads");
    let record = pool.records().pop().expect("one patient");
    c.bench_function("assess (in-memory record)", |b| {
        b.iter(|| assess(black_box(&record), &policy, &knowledge, as_of))
    });
    c.bench_function("knowledge load (embedded)", |b| {
        b.iter(|| Knowledge::embedded().expect("knowledge"))
    });
}

criterion_group!(benches, benchmarks);
criterion_main!(benches);
