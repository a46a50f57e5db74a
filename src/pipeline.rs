//! The work loop: take items from the queue, coalesce bursts per patient, assess at
//! most one patient at a time (per consumer; sharding with single-active-consumer
//! extends that across replicas), bounded concurrency, then settle each message:
//! ack after write-back committed, a delayed retry for transient failures, a dead
//! letter with the reason after the last attempt or for a permanent failure.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::clinical;
use crate::ehr::{is_own_resource, Ehr, EhrError, PatientRun};
use crate::fhir::client::{FhirError, Idempotency};
use crate::fhir::mapping::patient_of;
use crate::fhir::read::{ObservationCodes, ResourcePool};
use crate::fhir::writeback::write_back;
use crate::intake::reconcile::Reconciler;
use crate::intake::work::{from_intake_message, WorkItem};
use crate::metrics::Metrics;
use crate::queue::{now_ms, stream_of, Incoming, IntakeSettle, Job, QueueError, WorkQueue};

#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Assessments in flight at once (per replica).
    pub concurrency: usize,
    /// Items about one patient arriving within this window become one assessment.
    pub coalesce: Duration,
    /// On shutdown, how long in-flight work may take to finish.
    pub drain: Duration,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            coalesce: Duration::from_millis(300),
            drain: Duration::from_secs(20),
        }
    }
}

/// Why an item failed: decides retry or dead letter.
#[derive(Debug)]
pub enum Failure {
    Transient(String),
    Permanent(String),
}

impl From<EhrError> for Failure {
    fn from(e: EhrError) -> Self {
        match &e {
            EhrError::Fhir(f) if f.is_transient() => Failure::Transient(e.to_string()),
            _ => Failure::Permanent(e.to_string()),
        }
    }
}

impl From<QueueError> for Failure {
    fn from(e: QueueError) -> Self {
        Failure::Transient(e.to_string())
    }
}

pub struct Pipeline {
    pub ehr: Arc<Ehr>,
    pub queue: Arc<WorkQueue>,
    pub metrics: Arc<Metrics>,
    pub reconciler: Option<Arc<Reconciler>>,
    pub settings: PipelineSettings,
}

struct Group {
    first_seen: Instant,
    jobs: Vec<Job>,
}

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
                    Some(receiver) => {
                        let stream = stream_of(receiver)
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
                    Some(Ok(Incoming::Intake { body, settle })) => self.intake(body, settle).await,
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
                let mut distinct: Vec<&WorkItem> = Vec::new();
                for job in &group.jobs {
                    if !distinct.contains(&&job.item) {
                        distinct.push(&job.item);
                    }
                }
                pipeline
                    .metrics
                    .coalesced
                    .inc_by((group.jobs.len() - distinct.len()) as u64);
                let mut result = Ok(());
                for item in distinct {
                    if let Err(e) = pipeline.process(item).await {
                        result = Err(e);
                        break;
                    }
                }
                drop(permit);
                let _ = done.send((key, group.jobs, result, started));
            });
        }
    }

    async fn settle(&self, (key, jobs, result, started): Done) {
        self.metrics
            .processing_seconds
            .observe(started.elapsed().as_secs_f64());
        let first_queued = jobs.iter().filter_map(|j| j.enqueued_ms).min();
        let max_attempts = self.queue.max_attempts();
        match result {
            Ok(()) => {}
            Err(Failure::Transient(reason)) => {
                let attempts = jobs.iter().map(|j| j.attempts).max().unwrap_or(0);
                let job = &jobs[0];
                let outcome = if attempts + 1 < max_attempts {
                    self.metrics.retries.inc();
                    tracing::warn!(key = %key, attempts = attempts + 1, reason = %reason, "retrying later");
                    self.queue.retry_later(job).await
                } else {
                    self.dead_letter_job(
                        job,
                        &format!("gave up after {} attempts: {reason}", attempts + 1),
                        attempts + 1,
                    )
                    .await
                };
                if outcome.is_err() {
                    // Could not park it safely: leave every message for redelivery.
                    for job in jobs {
                        let _ = job.requeue().await;
                    }
                    return;
                }
            }
            Err(Failure::Permanent(reason)) => {
                if self
                    .dead_letter_job(&jobs[0], &reason, jobs[0].attempts + 1)
                    .await
                    .is_err()
                {
                    for job in jobs {
                        let _ = job.requeue().await;
                    }
                    return;
                }
            }
        }
        for job in jobs {
            let _ = job.ack().await;
        }
        if let Some(first) = first_queued {
            self.metrics
                .end_to_end_seconds
                .observe(now_ms().saturating_sub(first) as f64 / 1000.0);
        }
    }

    async fn dead_letter_job(
        &self,
        job: &Job,
        reason: &str,
        attempts: u32,
    ) -> Result<(), QueueError> {
        self.metrics.dead_letters.inc();
        tracing::error!(key = %job.item.key(), kind = job.item.kind(), reason, "dead-lettered");
        let body = serde_json::to_vec(&job.item).unwrap_or_default();
        self.queue
            .dead_letter(&body, reason, attempts, "work")
            .await
    }

    /// An intake-queue message: turned into work items (confirmed) before its ack;
    /// a malformed one is dead-lettered with the reason and affects nothing else.
    async fn intake(&self, body: Vec<u8>, settle: IntakeSettle) {
        match from_intake_message(&body) {
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

    /// One work item, start to finish.
    pub async fn process(&self, item: &WorkItem) -> Result<(), Failure> {
        let as_of = time::OffsetDateTime::now_utc().date();
        match item {
            WorkItem::Patient { patient } => {
                let run = self.ehr.run_patient(patient, as_of).await?;
                self.after_run(&run).await
            }
            WorkItem::Resource { reference } => {
                let resource = match self
                    .ehr
                    .client
                    .send(
                        reqwest::Method::GET,
                        reference,
                        None,
                        Idempotency::Idempotent,
                    )
                    .await
                {
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
                let patient = patient_of(&resource)
                    .ok_or_else(|| Failure::Permanent(format!("{reference} names no patient")))?;
                let run = self.ehr.run_patient(&patient, as_of).await?;
                self.after_run(&run).await
            }
            WorkItem::Requery { .. } => match &self.reconciler {
                Some(reconciler) => reconciler
                    .poll_once(&self.ehr.client, &self.queue)
                    .await
                    .map(|_| ())
                    .map_err(|e| Failure::Transient(e.to_string())),
                None => {
                    tracing::warn!("a notification named nothing and reconciliation is off: nothing re-queried");
                    Ok(())
                }
            },
            WorkItem::Bundle { bundle } => {
                let mut pool =
                    ResourcePool::new(ObservationCodes::from_knowledge(&self.ehr.knowledge));
                pool.add_json(&bundle.to_string(), "intake bundle")
                    .map_err(|e| Failure::Permanent(e.to_string()))?;
                for record in pool.records() {
                    let assessment = clinical::assess_with(
                        &record,
                        &self.ehr.policy,
                        &self.ehr.knowledge,
                        as_of,
                        self.ehr.options,
                    );
                    let write = write_back(&self.ehr.client, &assessment, &self.ehr.writeback)
                        .await
                        .map_err(EhrError::from)?;
                    self.after_run(&PatientRun {
                        assessment,
                        write,
                        requests: 0,
                    })
                    .await?;
                }
                Ok(())
            }
        }
    }

    /// Metrics, and an event when the assessment changed what the EHR holds.
    async fn after_run(&self, run: &PatientRun) -> Result<(), Failure> {
        let status = run.assessment.trd_status.code();
        self.metrics.assessments.with_label_values(&[status]).inc();
        let result = match (&run.write.transaction, run.write.dry_run) {
            (None, _) => "unchanged",
            (Some(_), true) => "dry-run",
            (Some(_), false) => "written",
        };
        self.metrics.writebacks.with_label_values(&[result]).inc();
        if result != "written" {
            return Ok(());
        }
        let event = json!({
            "patient": run.assessment.patient,
            "previous_status": run.write.previous_status,
            "status": status,
            "failed_adequate_trials": run.assessment.failed_adequate_trials,
            "summary": run.assessment.narrative.text.lines().next().unwrap_or_default(),
            "written": run.write.plan.written,
            "retired": run.write.plan.retired,
            "as_of": run.assessment.as_of.to_string(),
        });
        let body = serde_json::to_vec(&event).unwrap_or_default();
        self.queue
            .publish_event(&format!("assessment.{status}"), &body)
            .await?;
        Ok(())
    }
}
