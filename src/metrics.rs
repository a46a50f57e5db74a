//! Prometheus metrics: what operators watch (see README "Operations").

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    /// Notifications received, by shape and outcome (queued, ignored, rejected, unavailable, unauthorized).
    pub notifications: IntCounterVec,
    /// Intake-queue messages, by outcome.
    pub intake_messages: IntCounterVec,
    pub queue_depth: IntGauge,
    /// Work shards this replica consumes (they spread over the replicas).
    pub work_shards_owned: IntGauge,
    /// Assessments by TRD status.
    pub assessments: IntCounterVec,
    /// Write-backs by result: written, unchanged, dry-run.
    pub writebacks: IntCounterVec,
    pub retries: IntCounter,
    pub dead_letters: IntCounter,
    /// One work item, taken from the queue to settled.
    pub processing_seconds: Histogram,
    /// From first queued to settled.
    pub end_to_end_seconds: Histogram,
    pub coalesced: IntCounter,
    /// id-only notifications read and re-queued on their patient's shard.
    pub routed: IntCounter,
    /// Failures worth a retry, by kind (ehr, identity-provider, unauthorized,
    /// conflict, broker, panic).
    pub transient_failures: IntCounterVec,
    /// Assessments that panicked (caught: the message is settled, the rest go on).
    pub panics: IntCounter,
    /// `assessment.*` events by result (published, failed).
    pub events: IntCounterVec,
    /// Jumps in a subscription's event counter (notifications lost): each re-queries.
    pub notification_gaps: IntCounter,
    /// Reconciliation polls by outcome (polled, or skipped: another replica's tick
    /// polled less than nine tenths of an interval ago).
    pub reconcile_polls: IntCounterVec,
    /// Requests sent to the EHR by kind (read, search, transaction, write,
    /// capabilities), retries included: the load the service puts on the EHR.
    pub fhir_requests: IntCounterVec,
    /// Changed resources read after an id-only notification and found to be outside
    /// what the engine reads: no assessment.
    pub irrelevant: IntCounter,
    /// CDS Hooks calls by service and outcome (ok, deadline, bad-request,
    /// precondition-failed, unauthorized-{rule}).
    pub cds_requests: IntCounterVec,
    /// CDS Hooks call latency by service.
    pub cds_seconds: HistogramVec,
    /// Prefetch keys by state (hit, paged, null, missing, error).
    pub cds_prefetch: IntCounterVec,
    /// Requests sent to a CDS client's fhirServer because prefetch was incomplete.
    pub cds_fallback_fetches: IntCounter,
    /// Cards returned, by concern.
    pub cds_cards: IntCounterVec,
    /// Clinicians' feedback on the cards (each counted once).
    pub cds_feedback: IntCounterVec,
    /// Patient pages served, by outcome (ok, unauthorized, ehr-error).
    pub pages: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("trd".into()), None).expect("registry");
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric");
            registry.register(Box::new(c.clone())).expect("register");
            c
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("metric");
            registry.register(Box::new(c.clone())).expect("register");
            c
        };
        let histogram = |name: &str, help: &str| {
            let buckets = vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ];
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("metric");
            registry.register(Box::new(h.clone())).expect("register");
            h
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("metric");
            registry.register(Box::new(g.clone())).expect("register");
            g
        };
        let queue_depth = gauge(
            "queue_depth",
            "Messages waiting in the intake and work queues",
        );
        let work_shards_owned = gauge("work_shards_owned", "Work shards this replica consumes");
        Self {
            notifications: counter_vec(
                "notifications_total",
                "Subscription notifications by shape and outcome",
                &["shape", "outcome"],
            ),
            intake_messages: counter_vec(
                "intake_messages_total",
                "Intake-queue messages by outcome",
                &["outcome"],
            ),
            queue_depth,
            work_shards_owned,
            assessments: counter_vec(
                "assessments_total",
                "Assessments by TRD status",
                &["status"],
            ),
            writebacks: counter_vec("writebacks_total", "Write-backs by result", &["result"]),
            retries: counter("retries_total", "Work items scheduled for a delayed retry"),
            dead_letters: counter("dead_letters_total", "Work or intake items dead-lettered"),
            processing_seconds: histogram("processing_seconds", "Time to process one work item"),
            end_to_end_seconds: histogram(
                "end_to_end_seconds",
                "Time from first queued to settled",
            ),
            coalesced: counter(
                "coalesced_total",
                "Work items absorbed by another for the same patient",
            ),
            routed: counter(
                "routed_total",
                "id-only notifications resolved to their patient and queued on its shard",
            ),
            transient_failures: counter_vec(
                "transient_failures_total",
                "Failures retried later, by kind",
                &["kind"],
            ),
            panics: counter(
                "panics_total",
                "Assessments that panicked (caught and settled)",
            ),
            notification_gaps: counter(
                "notification_gaps_total",
                "Jumps in a subscription's event counter, each re-queried",
            ),
            reconcile_polls: counter_vec(
                "reconcile_polls_total",
                "Reconciliation polls by outcome",
                &["outcome"],
            ),
            irrelevant: counter(
                "irrelevant_changes_total",
                "Changed resources read after an id-only notification that the engine would not read",
            ),
            fhir_requests: counter_vec(
                "fhir_requests_total",
                "Requests sent to the EHR, by kind (retries included)",
                &["kind"],
            ),
            events: counter_vec("events_total", "assessment.* events by result", &["result"]),
            cds_requests: counter_vec(
                "cds_requests_total",
                "CDS Hooks calls by service and outcome",
                &["service", "outcome"],
            ),
            cds_seconds: {
                let buckets = vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ];
                let h = HistogramVec::new(
                    HistogramOpts::new("cds_request_seconds", "CDS Hooks call latency")
                        .buckets(buckets),
                    &["service"],
                )
                .expect("metric");
                registry.register(Box::new(h.clone())).expect("register");
                h
            },
            cds_prefetch: counter_vec(
                "cds_prefetch_total",
                "CDS prefetch keys by state (hit, paged, null, missing, error)",
                &["key", "state"],
            ),
            cds_fallback_fetches: counter(
                "cds_fallback_fetches_total",
                "Requests to a CDS client's fhirServer for what prefetch lacked",
            ),
            cds_cards: counter_vec("cds_cards_total", "CDS cards returned by concern", &["concern"]),
            cds_feedback: counter_vec(
                "cds_feedback_total",
                "Clinicians' feedback on the cards",
                &["service", "outcome", "reason"],
            ),
            pages: counter_vec("pages_total", "Patient pages by outcome", &["outcome"]),
            registry,
        }
    }

    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
