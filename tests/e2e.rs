//! End to end with real parts: RabbitMQ on 127.0.0.1:5672, Helios FHIR Server, and
//! `trd-sentinel serve` as a real process. Each test has its own queue names; the
//! tests run one at a time (one restarts the broker).

#[path = "support/broker.rs"]
mod broker;
#[path = "support/hfs.rs"]
mod hfs;
#[path = "support/service.rs"]
mod service;

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::BasicConsumeOptions;
use lapin::types::{AMQPValue, FieldTable};

use hfs::Hfs;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::*;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_message_leads_to_a_flag_and_logs_carry_no_phi() {
    let _serial = SERIAL.lock().await;
    let server = Hfs::start();
    load(&server, &["trd-two-ssris"]).await;
    let name = format!("e2e{}-intake", std::process::id());
    let service = start(&name, &server.base, &[]);
    let (_broker, connection) = broker(&name).await;
    publish_intake(
        &connection,
        &format!("{name}.intake"),
        &[br#"{"patient": "Patient/trd-two-ssris"}"#.to_vec()],
    )
    .await;
    wait_for("the Flag", Duration::from_secs(30), || async {
        flags(&server.base, "Patient/trd-two-ssris").await.len() == 1
    })
    .await;
    let metrics = reqwest::get(format!("{}/metrics", service.http))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("trd_assessments_total{status=\"trd\"} 1"),
        "{metrics}"
    );
    no_phi_in(&service.log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_is_dead_lettered_with_a_reason_and_nothing_else_is_affected() {
    let _serial = SERIAL.lock().await;
    let server = Hfs::start();
    load(&server, &["one-failure-at-risk"]).await;
    let name = format!("e2e{}-dead", std::process::id());
    let _service = start(&name, &server.base, &[]);
    let (_broker, connection) = broker(&name).await;
    publish_intake(
        &connection,
        &format!("{name}.intake"),
        &[
            b"this is not json".to_vec(),
            br#"{"patient": "Patient/one-failure-at-risk"}"#.to_vec(),
        ],
    )
    .await;
    wait_for(
        "the good message's Flag",
        Duration::from_secs(30),
        || async {
            flags(&server.base, "Patient/one-failure-at-risk")
                .await
                .len()
                == 1
        },
    )
    .await;

    let channel = connection.create_channel().await.expect("channel");
    let mut consumer = channel
        .basic_consume(
            &format!("{name}.dead"),
            "test",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume dead");
    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a dead letter")
        .expect("stream")
        .expect("delivery");
    assert_eq!(delivery.data, b"this is not json");
    let headers = delivery.properties.headers().clone().expect("headers");
    let reason = match headers.inner().get("x-trd-reason") {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("no reason header: {other:?}"),
    };
    assert!(reason.contains("not JSON"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_with_1000_patients_queued_then_restarted_every_patient_is_assessed_once() {
    let _serial = SERIAL.lock().await;
    const PATIENTS: usize = 1000;
    let server = Hfs::start();
    // 1000 copies of one small at-risk patient.
    let patients = server.load_copies(&["one-failure-at-risk"], PATIENTS).await;
    let name = format!("e2e{}-kill", std::process::id());
    let (_broker, connection) = broker(&name).await;
    let messages: Vec<Vec<u8>> = patients
        .iter()
        .map(|p| format!("{{\"patient\": \"{p}\"}}").into_bytes())
        .collect();
    publish_intake(&connection, &format!("{name}.intake"), &messages).await;

    let mut service = start(&name, &server.base, &[]);
    wait_for("some progress", Duration::from_secs(120), || async {
        service.metric("trd_assessments_total").await >= 50.0
    })
    .await;
    service.kill9();

    let restarted = start(&name, &server.base, &[]);
    // Done when the queues are empty and the service has been idle for a while.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last = -1.0;
    loop {
        assert!(
            Instant::now() < deadline,
            "queues did not drain; log: {}",
            restarted.log.display()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        let processed = restarted.metric("trd_processing_seconds_count").await;
        if backlog(&connection, &name).await == 0 && processed == last && processed > 0.0 {
            break;
        }
        last = processed;
    }
    assert_eq!(
        restarted.metric("trd_dead_letters_total").await,
        0.0,
        "nothing dead-lettered"
    );
    let flags = search(&server.base, "Flag?_count=1000").await;
    let mut subjects: Vec<String> = flags
        .iter()
        .filter_map(|f| f["subject"]["reference"].as_str().map(str::to_string))
        .collect();
    subjects.sort();
    let total = subjects.len();
    subjects.dedup();
    assert_eq!(
        (total, subjects.len()),
        (PATIENTS, PATIENTS),
        "exactly one Flag per patient"
    );
    let assessments = search(&server.base, "Observation?code=https://fhir.trd-sentinel.org/CodeSystem/trd-assessment|trd-assessment&_count=1000").await;
    assert_eq!(
        assessments.len(),
        PATIENTS,
        "exactly one assessment Observation per patient"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_reconnects_after_a_broker_restart_and_finishes() {
    let _serial = SERIAL.lock().await;
    let server = Hfs::start();
    load(&server, &["trd-two-ssris", "one-failure-at-risk"]).await;
    let name = format!("e2e{}-restart", std::process::id());
    let _service = start(&name, &server.base, &[]);
    let (vhost, connection) = broker(&name).await;
    publish_intake(
        &connection,
        &format!("{name}.intake"),
        &[br#"{"patient": "Patient/trd-two-ssris"}"#.to_vec()],
    )
    .await;
    wait_for("the first Flag", Duration::from_secs(30), || async {
        flags(&server.base, "Patient/trd-two-ssris").await.len() == 1
    })
    .await;

    // A hard time limit: a broker CLI that hangs must fail the test, not stall it.
    let rabbitmqctl = |action: &str| {
        Command::new("timeout")
            .args(["-s", "KILL", "120", "rabbitmqctl", action])
            .status()
            .expect("rabbitmqctl")
            .success()
    };
    assert!(rabbitmqctl("stop_app"), "rabbitmqctl stop_app");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(rabbitmqctl("start_app"), "rabbitmqctl start_app");
    // `connect` retries while the broker comes back.
    let connection = vhost.connect().await;
    publish_intake(
        &connection,
        &format!("{name}.intake"),
        &[br#"{"patient": "Patient/one-failure-at-risk"}"#.to_vec()],
    )
    .await;
    wait_for(
        "a Flag after the restart",
        Duration::from_secs(90),
        || async {
            flags(&server.base, "Patient/one-failure-at-risk")
                .await
                .len()
                == 1
        },
    )
    .await;
}

/// Answers 503 until `healthy_at`, then forwards to the real server.
async fn flaky_proxy(target: String, healthy_at: Instant) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                if Instant::now() < healthy_at {
                    let mut buf = [0u8; 8192];
                    let _ = tokio::io::AsyncReadExt::read(&mut inbound, &mut buf).await;
                    let _ = inbound.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                    return;
                }
                if let Ok(mut outbound) =
                    tokio::net::TcpStream::connect(target.trim_start_matches("http://")).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ehr_answering_503_for_a_while_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let server = Hfs::start();
    load(&server, &["trd-two-ssris", "partial-response"]).await;
    let name = format!("e2e{}-flaky", std::process::id());
    // The service starts against the real server (capability check), then the proxy fails for 6 s.
    let proxy = flaky_proxy(server.base.clone(), Instant::now() + Duration::from_secs(6)).await;
    let _service = start(&name, &proxy, &[("TRD_FHIR_MAX_RETRIES", "1")]);
    let (_broker, connection) = broker(&name).await;
    publish_intake(
        &connection,
        &format!("{name}.intake"),
        &[
            br#"{"patient": "Patient/trd-two-ssris"}"#.to_vec(),
            br#"{"patient": "Patient/partial-response"}"#.to_vec(),
        ],
    )
    .await;
    wait_for(
        "both Flags after the outage",
        Duration::from_secs(60),
        || async {
            flags(&server.base, "Patient/trd-two-ssris").await.len() == 1
                && flags(&server.base, "Patient/partial-response").await.len() == 1
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_work_and_one_takes_over_when_the_other_dies() {
    let _serial = SERIAL.lock().await;
    const EACH_PHASE: usize = 40;
    let server = Hfs::start();
    let patients = server
        .load_copies(&["one-failure-at-risk"], 2 * EACH_PHASE)
        .await;
    let name = format!("e2e{}-pair", std::process::id());
    // 16 shards: two replicas each get a share (with 4, one might get them all).
    let sixteen = [("TRD_AMQP_SHARDS", "16")];
    let first = start(&name, &server.base, &sixteen);
    let mut second = start(&name, &server.base, &sixteen);
    // Each has heard the other and taken its share of shards (the gauge is refreshed
    // every 5 s; after a broker restart in an earlier test this can take longer).
    wait_for(
        "both replicas owning shards before any work",
        Duration::from_secs(60),
        || async {
            let (a, b) = (
                first.metric("trd_work_shards_owned").await,
                second.metric("trd_work_shards_owned").await,
            );
            a > 0.0 && b > 0.0 && a + b == 16.0
        },
    )
    .await;

    let (_broker, connection) = broker(&name).await;
    let messages = |range: std::ops::Range<usize>| -> Vec<Vec<u8>> {
        patients[range]
            .iter()
            .map(|p| format!("{{\"patient\": \"{p}\"}}").into_bytes())
            .collect()
    };
    publish_intake(
        &connection,
        &format!("{name}.intake"),
        &messages(0..EACH_PHASE),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (a, b) = (
            first.metric("trd_assessments_total").await,
            second.metric("trd_assessments_total").await,
        );
        if a + b >= EACH_PHASE as f64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for both replicas' assessments: {a} + {b} of {EACH_PHASE}; shards {} + {}\nfirst:\n{}\nsecond:\n{}",
            first.metric("trd_work_shards_owned").await,
            second.metric("trd_work_shards_owned").await,
            first.log_tail(),
            second.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (by_first, by_second) = (
        first.metric("trd_assessments_total").await,
        second.metric("trd_assessments_total").await,
    );
    assert!(
        by_first > 0.0 && by_second > 0.0,
        "both replicas assess: {by_first} + {by_second}"
    );
    assert_eq!(by_first + by_second, EACH_PHASE as f64, "each patient once");
    // The gauge is refreshed every 5 s.
    wait_for(
        "every shard with one owner",
        Duration::from_secs(15),
        || async {
            let (a, b) = (
                first.metric("trd_work_shards_owned").await,
                second.metric("trd_work_shards_owned").await,
            );
            a > 0.0 && b > 0.0 && a + b == 16.0
        },
    )
    .await;

    // The second dies; its shards pass to the first once it is missed.
    second.kill9();
    publish_intake(
        &connection,
        &format!("{name}.intake"),
        &messages(EACH_PHASE..2 * EACH_PHASE),
    )
    .await;
    wait_for(
        "the survivor takes over",
        Duration::from_secs(120),
        || async { first.metric("trd_assessments_total").await >= by_first + EACH_PHASE as f64 },
    )
    .await;
    for patient in &patients {
        assert_eq!(
            flags(&server.base, patient).await.len(),
            1,
            "{patient}: exactly one Flag"
        );
    }
    assert_eq!(backlog(&connection, &name).await, 0);
}
