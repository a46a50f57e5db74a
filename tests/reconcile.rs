//! Reconciliation with several replicas, end to end: RabbitMQ, Helios on PostgreSQL
//! and two `serve` processes polling one EHR.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/e2e.rs"]
mod e2e;
#[path = "support/hfs.rs"]
mod hfs;
#[path = "support/service.rs"]
mod service;

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

use e2e::{broker, start_concurrent as start};
use hfs::Hfs;

/// Reconciliation on two replicas: each queues a tick every interval, yet one poll
/// runs per interval, and the watermark is in the broker (no replica's file is used).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_poll_once_per_interval_from_one_shared_watermark() {
    let server = Hfs::start_postgres();
    let name = format!("dlv{}-poller", std::process::id());
    let file = |replica: &str| std::env::temp_dir().join(format!("{name}-{replica}-watermark"));
    let (file_a, file_b) = (file("a"), file("b"));
    let start_polling = |state: &std::path::Path| {
        let state = state.display().to_string();
        start(
            &name,
            &server.base,
            &[
                ("TRD_RECONCILE_ENABLED", "true"),
                ("TRD_RECONCILE_INTERVAL_SECS", "2"),
                ("TRD_RECONCILE_STATE_FILE", state.as_str()),
            ],
        )
    };
    let mut a = start_polling(&file_a);
    let mut b = start_polling(&file_b);
    // About 11 ticks from the two replicas over 11 s; one poll per 2 s interval.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let count = |outcome: &'static str| {
        let (a, b) = (&a, &b);
        async move {
            let series = format!("trd_reconcile_polls_total{{outcome=\"{outcome}\"}}");
            a.metric(&series).await + b.metric(&series).await
        }
    };
    let (polled, skipped) = (count("polled").await, count("skipped").await);
    assert!(
        (4.0..=7.0).contains(&polled),
        "one poll per interval, not one per replica and interval: {polled} polled, {skipped} skipped"
    );
    assert!(
        polled + skipped >= 9.0,
        "both replicas ticked: {polled} polled, {skipped} skipped"
    );
    assert!(
        !file_a.exists() && !file_b.exists(),
        "with a broker the watermark is not a replica's file"
    );
    // Stopped first, so no poll holds the watermark while it is counted.
    a.terminate();
    b.terminate();
    let (_broker, connection) = broker(&name).await;
    let channel = connection.create_channel().await.expect("channel");
    let watermark = channel
        .queue_declare(
            &format!("{name}.work.reconcile-watermark"),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("the watermark queue exists");
    assert_eq!(
        watermark.message_count(),
        1,
        "one watermark, the newest, shared by every replica"
    );
}
