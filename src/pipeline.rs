//! The work loop: take items from the queue, coalesce bursts per patient, assess at
//! most one patient at a time (per consumer; sharding by patient with
//! single-active-consumer extends that across replicas), bounded concurrency, then
//! settle each message ([`settle`]).
//!
//! The patient is the unit of work: an id-only notification (`WorkItem::Resource`) is
//! read to learn its patient and re-queued on that patient's shard, never assessed
//! where it landed, so two resources of one patient are never assessed at once.
//! A panic while assessing is caught and settles its messages like any failure.
//! Events are sent at least once: after every committed change, again when a
//! message comes back (the process may have died between commit and publish), and
//! always in events-only mode (dry-run or nothing to write).

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::ehr::{is_own_resource, Ehr, EhrError, PatientRun};
use crate::fhir::client::{FhirError, Idempotency};
use crate::fhir::mapping::patient_of;
use crate::fhir::read::ResourcePool;
use crate::intake::gaps::EventCounter;
use crate::intake::message::from_intake_message;
use crate::intake::reconcile::Reconciler;
use crate::metrics::Metrics;
use crate::outputs::AssessmentEvent;
use crate::queue::{Incoming, IntakeSettle, Job, QueueError, WorkQueue};
use crate::work::WorkItem;

pub mod settle;
pub use settle::Failure;

#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Assessments in flight at once (per replica).
    pub concurrency: usize,
    /// Items about one patient arriving within this window become one assessment.
    pub coalesce: Duration,
    /// On shutdown, how long in-flight work may take to finish.
    pub drain: Duration,
    /// Fault injection for the delivery tests only (see [`Fault`]).
    pub fault: Option<Fault>,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            coalesce: Duration::from_millis(300),
            drain: Duration::from_secs(20),
            fault: None,
        }
    }
}

/// Faults the end-to-end tests inject into a real process, named in the environment
/// variable [`Fault::ENV`] (not a setting: never set it in production).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Abort the process right after a write-back committed, before its event is
    /// published: the test of "events at least once".
    CrashAfterCommit,
    /// Panic while assessing this patient (`panic-for:Patient/x`): the test of
    /// "poison input contained".
    PanicFor(String),
}

impl Fault {
    pub const ENV: &'static str = "TRDSENTINEL_FAULT";

    pub fn from_env() -> Option<Self> {
        let value = std::env::var(Self::ENV).ok()?;
        match value.as_str() {
            "crash-after-commit" => Some(Fault::CrashAfterCommit),
            _ => value
                .strip_prefix("panic-for:")
                .map(|patient| Fault::PanicFor(patient.to_string())),
        }
    }
}

pub struct Pipeline {
    pub ehr: Arc<Ehr>,
    pub queue: Arc<WorkQueue>,
    pub metrics: Arc<Metrics>,
    pub reconciler: Option<Arc<Reconciler>>,
    pub settings: PipelineSettings,
    /// Event numbers seen per subscription (on its shard).
    pub event_counts: tokio::sync::Mutex<HashMap<String, EventCounter>>,
}

struct Group {
    first_seen: Instant,
    jobs: Vec<Job>,
}

/// A finished group: its key, its messages, the result, when it started.
type Done = (String, Vec<Job>, Result<(), Failure>, Instant);

impl Pipeline {
    /// Runs until `shutdown` turns true; reconnects to the broker with backoff.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(500);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let stream = match self.queue.as_ref() {
                WorkQueue::Rabbit(rabbit) => match rabbit.consume("trd-sentinel").await {
                    Ok((connection, stream)) => Some((Some(connection), stream)),
                    Err(e) => {
                        tracing::warn!(error = %e, delay_ms = backoff.as_millis() as u64, "broker unavailable; reconnecting");
                        None
                    }
                },
                WorkQueue::Local(_) => match self.queue.take_local_receiver().await {
                    Some(mut receiver) => {
                        let stream =
                            futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
                                .map(|job| Ok(Incoming::Work(job)))
                                .boxed();
                        Some((None, stream))
                    }
                    None => return,
                },
            };
            match stream {
                Some((connection, stream)) => {
                    backoff = Duration::from_millis(500);
                    let finished = self.clone().consume(stream, &mut shutdown).await;
                    if let Some(connection) = connection {
                        let _ = connection.close(200, "consumer done").await;
                    }
                    if finished {
                        return;
                    }
                }
                None => {
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Consumes one stream. Returns true when shut down (false: the stream broke).
    async fn consume(
        self: Arc<Self>,
        mut stream: futures_util::stream::BoxStream<'static, Result<Incoming, QueueError>>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut pending: HashMap<String, Group> = HashMap::new();
        let mut in_flight: HashSet<String> = HashSet::new();
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let tick = Duration::from_millis(25);
        let stopped = loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break true,
                Some(done) = done_rx.recv() => {
                    in_flight.remove(&done.0);
                    self.settle(done).await;
                }
                incoming = stream.next() => match incoming {
                    Some(Ok(Incoming::Work(job))) => {
                        pending.entry(job.item.key()).or_insert_with(|| Group { first_seen: Instant::now(), jobs: Vec::new() }).jobs.push(job);
                    }
                    Some(Ok(Incoming::Intake { body, declared_complete, settle })) => {
                        self.intake(body, declared_complete, settle).await
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "consumer stream failed");
                        break false;
                    }
                    None => break false,
                },
                _ = tokio::time::sleep(tick) => {}
            }
            self.launch_ready(&mut pending, &mut in_flight, &permits, &done_tx);
        };

        // Drain: finish what is in flight (up to the drain time), return the rest.
        let deadline = Instant::now() + self.settings.drain;
        while !in_flight.is_empty() && Instant::now() < deadline {
            match tokio::time::timeout(deadline - Instant::now(), done_rx.recv()).await {
                Ok(Some(done)) => {
                    in_flight.remove(&done.0);
                    self.settle(done).await;
                }
                _ => break,
            }
        }
        for (_, group) in pending.drain() {
            for job in group.jobs {
                let _ = job.requeue().await;
            }
        }
        stopped
    }

    fn launch_ready(
        self: &Arc<Self>,
        pending: &mut HashMap<String, Group>,
        in_flight: &mut HashSet<String>,
        permits: &Arc<Semaphore>,
        done_tx: &mpsc::UnboundedSender<Done>,
    ) {
        let ready: Vec<String> = pending
            .iter()
            .filter(|(key, group)| {
                group.first_seen.elapsed() >= self.settings.coalesce && !in_flight.contains(*key)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in ready {
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                return;
            };
            let Some(group) = pending.remove(&key) else {
                continue;
            };
            in_flight.insert(key.clone());
            let (pipeline, done) = (self.clone(), done_tx.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let result = pipeline.run_group(&group.jobs).await;
                drop(permit);
                let _ = done.send((key, group.jobs, result, started));
            });
        }
    }

    /// The distinct items of a coalesced group, one after another; a message the
    /// broker delivered before (or a retry) makes every item a replay, so its event is
    /// sent again. A panic is caught here and fails the group like any error.
    async fn run_group(&self, jobs: &[Job]) -> Result<(), Failure> {
        let mut distinct: Vec<&WorkItem> = Vec::new();
        for job in jobs {
            if !distinct.contains(&&job.item) {
                distinct.push(&job.item);
            }
        }
        // One poll answers every re-query and tick of the group (they share a shard).
        let is_poll =
            |i: &WorkItem| matches!(i, WorkItem::Requery { .. } | WorkItem::ScheduledPoll);
        if let Some(first) = distinct
            .iter()
            .position(|i| matches!(i, WorkItem::Requery { .. }))
            .or_else(|| distinct.iter().position(|i| is_poll(i)))
        {
            let poll = distinct.remove(first);
            distinct.retain(|i| !is_poll(i));
            distinct.insert(first.min(distinct.len()), poll);
        }
        self.metrics
            .coalesced
            .inc_by(jobs.len().saturating_sub(distinct.len()) as u64);
        let replay = jobs.iter().any(|j| j.redelivered || j.attempts > 0);
        for item in distinct {
            let run = AssertUnwindSafe(self.process(item, replay)).catch_unwind();
            match run.await {
                Ok(Ok(())) => {}
                Ok(Err(failure)) => return Err(failure),
                Err(_) => {
                    // The panic hook logged where (never what: values can be PHI).
                    self.metrics.panics.inc();
                    return Err(Failure::transient(
                        "panic",
                        format!("the assessment of {} panicked (a defect)", item.key()),
                    ));
                }
            }
        }
        Ok(())
    }

    async fn settle(&self, (_key, jobs, result, started): Done) {
        self.metrics
            .processing_seconds
            .observe(started.elapsed().as_secs_f64());
        settle::settle_all(&self.queue, &self.metrics, jobs, &result).await;
    }

    /// An intake-queue message: turned into work items (confirmed) before its ack;
    /// a malformed one is dead-lettered with the reason and affects nothing else.
    async fn intake(&self, body: Vec<u8>, declared_complete: bool, settle: IntakeSettle) {
        match from_intake_message(&body, declared_complete) {
            Ok(items) => {
                for item in &items {
                    if let Err(e) = self.queue.enqueue(item).await {
                        tracing::warn!(error = %e, "could not queue intake work; message returned");
                        let _ = settle.requeue().await;
                        return;
                    }
                }
                self.metrics
                    .intake_messages
                    .with_label_values(&["queued"])
                    .inc();
                let _ = settle.ack().await;
            }
            Err(reason) => {
                self.metrics
                    .intake_messages
                    .with_label_values(&["rejected"])
                    .inc();
                self.metrics.dead_letters.inc();
                tracing::warn!(reason = %reason, "intake message dead-lettered");
                if self
                    .queue
                    .dead_letter(&body, &reason.to_string(), 1, "intake")
                    .await
                    .is_ok()
                {
                    let _ = settle.ack().await;
                } else {
                    let _ = settle.requeue().await;
                }
            }
        }
    }

    /// One work item, start to finish. `replay`: the message came back, so the event
    /// of a change already committed is sent again.
    pub async fn process(&self, item: &WorkItem, replay: bool) -> Result<(), Failure> {
        let as_of = time::OffsetDateTime::now_utc().date();
        match item {
            WorkItem::Patient { patient } => {
                if self.settings.fault.as_ref() == Some(&Fault::PanicFor(patient.clone())) {
                    panic!("fault injection: a poison patient");
                }
                let run = self.ehr.run_patient(patient, as_of).await?;
                self.after_run(&run, replay).await
            }
            WorkItem::Resource { reference } => self.route_to_patient(reference).await,
            WorkItem::EventCount {
                subscription,
                events_since_start,
                event_numbers,
            } => {
                // The events' own numbers first, then the count (equal to the last
                // number, or ahead of it on a heartbeat after lost events).
                let numbers: Vec<u64> = event_numbers
                    .iter()
                    .copied()
                    .chain(*events_since_start)
                    .collect();
                self.check_event_count(subscription, &numbers).await
            }
            WorkItem::Requery { .. } | WorkItem::ScheduledPoll => match &self.reconciler {
                Some(reconciler) => {
                    let scheduled = matches!(item, WorkItem::ScheduledPoll);
                    let outcome = reconciler
                        .poll_once(&self.ehr.client, &self.queue, scheduled)
                        .await
                        .map_err(|e| Failure::transient("ehr", e.to_string()))?;
                    self.metrics
                        .reconcile_polls
                        .with_label_values(&[outcome.label()])
                        .inc();
                    Ok(())
                }
                None => {
                    tracing::warn!("a notification named nothing and reconciliation is off: nothing re-queried");
                    Ok(())
                }
            },
            WorkItem::Bundle { bundle } => {
                // Declared complete at intake, and about one patient (its shard's key).
                let mut pool = ResourcePool::new(self.ehr.engine.relevance.clone());
                pool.add_value(bundle, "intake bundle");
                for record in pool.records() {
                    let run = self.ehr.assess_and_write(&record, None, as_of).await?;
                    self.after_run(&run, replay).await?;
                }
                Ok(())
            }
        }
    }

    /// A subscription's event counter ([`crate::intake::gaps`]): numbers missing for
    /// longer than the grace mean notifications were lost, so what changed is
    /// re-queried. All counts of a subscription reach this one consumer (its shard),
    /// whichever replica received the notification; a consumer that just took the
    /// shard over starts counting.
    async fn check_event_count(&self, subscription: &str, numbers: &[u64]) -> Result<(), Failure> {
        let now = Instant::now();
        let gap = {
            let mut counts = self.event_counts.lock().await;
            let counter = counts.entry(subscription.to_string()).or_default();
            counter.observe_all(numbers, now)
        };
        let n = numbers.iter().copied().max().unwrap_or_default();
        if gap {
            tracing::warn!(subscription, now = n, "notification gap: re-querying");
            self.metrics.notification_gaps.inc();
            self.queue
                .enqueue(&WorkItem::Requery {
                    subscription: Some(subscription.to_string()),
                })
                .await?;
        }
        Ok(())
    }

    /// An id-only notification: read the resource to learn its patient, then queue
    /// the patient on its own shard (confirmed before this message is acked).
    async fn route_to_patient(&self, reference: &str) -> Result<(), Failure> {
        let read = self
            .ehr
            .client
            .send(
                reqwest::Method::GET,
                reference,
                None,
                Idempotency::Idempotent,
            )
            .await;
        let resource = match read {
            Ok(r) => r,
            // Gone (deleted since): nothing to assess.
            Err(FhirError::Status {
                status: 404 | 410, ..
            }) => return Ok(()),
            Err(e) => return Err(EhrError::from(e).into()),
        };
        if is_own_resource(&resource) {
            return Ok(());
        }
        // Where the EHR's subscription could not be narrowed to the engine's codes
        // (a server that does not evaluate the topic's criterion): one read, no more.
        if !self.ehr.engine.relevance.matters(&resource) {
            self.metrics.irrelevant.inc();
            return Ok(());
        }
        let patient = patient_of(&resource)
            .ok_or_else(|| Failure::Permanent(format!("{reference} names no patient")))?;
        self.queue.enqueue(&WorkItem::Patient { patient }).await?;
        self.metrics.routed.inc();
        Ok(())
    }

    /// Metrics, and the `assessment.*` event: after a committed change, on a replay
    /// (the event of a change committed before a crash), and always in events-only
    /// mode. Its message id is the assessment's content hash, so consumers drop
    /// duplicates.
    async fn after_run(&self, run: &PatientRun, replay: bool) -> Result<(), Failure> {
        let status = run.assessment.trd_status.code();
        self.metrics.assessments.with_label_values(&[status]).inc();
        let result = match (&run.write.transaction, run.write.dry_run) {
            (None, _) => "unchanged",
            (Some(_), true) => "dry-run",
            (Some(_), false) => "written",
        };
        self.metrics.writebacks.with_label_values(&[result]).inc();
        if result == "written" && self.settings.fault == Some(Fault::CrashAfterCommit) {
            tracing::error!(
                fault = Fault::ENV,
                "fault injection: aborting between commit and publish"
            );
            std::process::abort();
        }
        let events_only = run.write.dry_run || self.ehr.writeback.resources.is_empty();
        if !(result == "written" || replay || events_only) {
            return Ok(());
        }
        let event = AssessmentEvent::of(run, events_only);
        let body = serde_json::to_vec(&event).map_err(QueueError::from)?;
        let published = self
            .queue
            .publish_event(&event.routing_key(), &body, &run.write.content_hash)
            .await;
        let label = if published.is_ok() {
            "published"
        } else {
            "failed"
        };
        self.metrics.events.with_label_values(&[label]).inc();
        Ok(published?)
    }
}
