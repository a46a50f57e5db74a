//! `trd-sentinel serve`: intake (HTTP notifications, the intake queue, optional
//! reconciliation) feeding the work queue, the pipeline consuming it, and a graceful
//! shutdown on SIGTERM: stop intake, finish or return in-flight work, close the
//! broker connection.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use tokio::sync::watch;

use crate::config::Config;
use crate::ehr::{Ehr, EhrError};
use crate::http::{configure, AppState, EhrProbe, NotifyAuth};
use crate::intake::reconcile::Reconciler;
use crate::metrics::Metrics;
use crate::pipeline::{Fault, Pipeline, PipelineSettings};
use crate::queue::{LocalQueue, QueueError, QueueSettings, Rabbit, WorkQueue};
use crate::work::WorkItem;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Ehr(#[from] EhrError),
    #[error("RabbitMQ unreachable at start: {0}")]
    Broker(QueueError),
    #[error("http: {0}")]
    Http(#[from] std::io::Error),
    #[error(transparent)]
    Subscriptions(#[from] crate::intake::subscriptions::SubscriptionError),
}

/// Connects to the broker, retrying for up to a minute (it may start after us).
async fn connect_queue(config: &Config) -> Result<WorkQueue, ServiceError> {
    let url = config
        .amqp
        .resolved_url()
        .map_err(|problem| crate::config::ConfigError {
            problems: vec![problem],
        })?;
    let Some(url) = url else {
        return Ok(WorkQueue::Local(Arc::new(LocalQueue::new(
            Duration::from_millis(config.amqp.retry_delay_ms),
        ))));
    };
    let mut delay = Duration::from_millis(500);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match Rabbit::connect(url.expose(), QueueSettings::from(&config.amqp)).await {
            Ok(rabbit) => return Ok(WorkQueue::Rabbit(Box::new(rabbit))),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "broker not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(8));
            }
            Err(e) => return Err(ServiceError::Broker(e)),
        }
    }
}

pub async fn serve(config: Config) -> Result<(), ServiceError> {
    let problems = config.serve_problems();
    if !problems.is_empty() {
        return Err(crate::config::ConfigError { problems }.into());
    }
    log_panics_without_values();
    for warning in config.warnings() {
        tracing::warn!(warning, "configuration");
    }
    let metrics = Arc::new(Metrics::new());
    let mut ehr = Ehr::from_config(&config)?;
    let requests = metrics.fhir_requests.clone();
    ehr.client = ehr.client.with_observer(Arc::new(move |kind| {
        requests.with_label_values(&[kind.label()]).inc();
    }));
    let ehr = Arc::new(ehr);
    // The EHR and the broker may take minutes to answer: meanwhile a probe finds the
    // process alive (/healthz) and not ready, with what it waits for (/readyz).
    let starting = StartingProbe::bind(&config.http.addr)?;
    starting.waiting_for("the EHR's CapabilityStatement");
    let waited = wait_for_ehr(&ehr, &starting).await;
    let queue = match waited {
        Ok(()) => {
            starting.waiting_for("the broker");
            connect_queue(&config).await
        }
        Err(e) => Err(e),
    };
    starting.stop().await;
    let queue = Arc::new(queue?);
    tracing::info!(queue = queue.describe(), ehr = ehr.client.base_url(), policy = %ehr.engine.policy.name, "starting");
    if matches!(queue.as_ref(), WorkQueue::Local(_)) {
        tracing::warn!(
            "no broker configured (TRD_AMQP_URL): using an in-process queue; it is NOT durable"
        );
    }
    let reconciler = config.reconcile.enabled.then(|| {
        Arc::new(Reconciler {
            state_file: config.reconcile.state_file.clone(),
            initial_look_back_days: config.reconcile.initial_look_back_days,
            min_spacing: Duration::from_millis(config.reconcile.interval_secs.saturating_mul(900)),
            relevance: ehr.engine.relevance.clone(),
        })
    });
    let pipeline = Arc::new(Pipeline {
        ehr: ehr.clone(),
        queue: queue.clone(),
        metrics: metrics.clone(),
        reconciler: reconciler.clone(),
        settings: PipelineSettings {
            concurrency: config.pipeline.concurrency,
            coalesce: Duration::from_millis(config.pipeline.coalesce_ms),
            drain: Duration::from_secs(config.pipeline.drain_secs),
            fault: Fault::from_env(),
        },
        event_counts: Default::default(),
    });

    let (stop, stopped) = watch::channel(false);
    let worker = tokio::spawn(pipeline.run(stopped.clone()));
    let depth = tokio::spawn(watch_depth(queue.clone(), metrics.clone(), stopped.clone()));
    let poller = reconciler.map(|_| {
        tokio::spawn(poll_periodically(
            queue.clone(),
            Duration::from_secs(config.reconcile.interval_secs),
            stopped.clone(),
        ))
    });

    let state = web::Data::new(AppState {
        queue: queue.clone(),
        metrics: metrics.clone(),
        auth: NotifyAuth {
            token: config.notify_token(),
            header: config.notify.header.clone(),
            hmac_secret: config.notify.hmac_secret.clone(),
            hmac_header: config.notify.hmac_header.clone(),
            allow_unauthenticated: config.notify.allow_unauthenticated,
        },
        relevance: Some(ehr.engine.relevance.clone()),
        ehr: Some(EhrProbe::new(
            ehr.clone(),
            config.subscriptions.report_in_readyz && config.http.public_base_url.is_some(),
        )),
    });
    let links = match (
        config.page.enabled,
        config.page.key(),
        &config.http.public_base_url,
    ) {
        (true, Some(key), Some(base)) => Some(Arc::new(crate::page::link::PageLinks::new(
            key,
            config.page.link_lifetime_secs,
            base,
        ))),
        _ => None,
    };
    let pages = links.clone().map(|links| {
        web::Data::new(crate::page::routes::PageState {
            links,
            ehr: ehr.clone(),
            csp: crate::page::content_security_policy(&config.page.frame_ancestors),
            metrics: metrics.clone(),
        })
    });
    let page_link: Option<crate::cds::PageLink> = links.map(|links| {
        Arc::new(move |patient: &str| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            links.link(patient, now)
        }) as crate::cds::PageLink
    });
    let cds = config.cds.enabled.then(|| {
        web::Data::new(crate::cds::routes::CdsState {
            cds: Arc::new(crate::cds::Cds {
                settings: config.cds.clone(),
                trust: crate::cds::trust::Trust::new(config.cds.clone()),
                ehr: ehr.clone(),
                metrics: metrics.clone(),
                queue: Some(queue.clone()),
                public_base_url: config.http.public_base_url.clone(),
                page_link: page_link.clone(),
            }),
            feedback_seen: Default::default(),
        })
    });
    let limit = config.http.body_limit_bytes;
    let server = HttpServer::new(move || {
        let app = App::new()
            .app_data(state.clone())
            .configure(|c| configure(c, limit));
        let app = match &cds {
            Some(cds) => app
                .app_data(cds.clone())
                .configure(crate::cds::routes::configure),
            None => app,
        };
        match &pages {
            Some(pages) => app
                .app_data(pages.clone())
                .configure(crate::page::routes::configure),
            None => app,
        }
    })
    .disable_signals()
    .shutdown_timeout(10)
    .bind(&config.http.addr)?
    .run();
    let handle = server.handle();
    let http = tokio::spawn(server);
    tracing::info!(addr = %config.http.addr, "listening");

    // Only now: the EHR's handshake must find the endpoint listening.
    if config.subscriptions.ensure_on_start {
        match crate::intake::subscriptions::ensure(&ehr.client, &config, &ehr.engine.relevance)
            .await
        {
            Ok(report) => tracing::info!(
                mode = report.mode,
                created = report.created,
                updated = report.updated,
                unchanged = report.unchanged,
                retired = report.retired,
                active = report.active.len(),
                "subscriptions ensured and active"
            ),
            Err(e) => {
                tracing::error!(error = %e, "could not ensure subscriptions; stopping");
                handle.stop(true).await;
                let _ = stop.send(true);
                let _ = worker.await;
                queue.close().await;
                return Err(e.into());
            }
        }
    }

    wait_for_signal().await;
    tracing::info!("shutting down: intake stops, in-flight work finishes or returns to the queue");
    handle.stop(true).await;
    let _ = stop.send(true);
    let _ = worker.await;
    let _ = depth.await;
    if let Some(poller) = poller {
        let _ = poller.await;
    }
    let _ = http.await;
    queue.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Checks the EHR's capabilities; an EHR that is briefly down at start (5xx,
/// timeouts) is waited for, up to two minutes, but a missing capability fails at once.
async fn wait_for_ehr(ehr: &Ehr, starting: &StartingProbe) -> Result<(), ServiceError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut delay = Duration::from_millis(500);
    loop {
        match ehr.check_capabilities().await {
            Ok(()) => return Ok(()),
            Err(EhrError::Fhir(e))
                if e.is_transient() && tokio::time::Instant::now() < deadline =>
            {
                tracing::warn!(error = %e, "EHR not available yet; waiting");
                starting.waiting_for(&format!("the EHR ({e})"));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(8));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The listener of a service still starting: `/healthz` 200 (alive), `/readyz` 503
/// naming what it waits for; everything else 503. Replaced by the service's own once
/// the EHR and the broker answer.
struct StartingProbe {
    handle: actix_web::dev::ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    waiting: Arc<std::sync::Mutex<String>>,
}

impl StartingProbe {
    fn bind(addr: &str) -> Result<Self, ServiceError> {
        let waiting = Arc::new(std::sync::Mutex::new(String::from("start-up")));
        let shared = waiting.clone();
        let server = HttpServer::new(move || {
            let waiting = shared.clone();
            App::new()
                .route(
                    "/healthz",
                    web::get().to(|| async { actix_web::HttpResponse::Ok().body("starting") }),
                )
                .default_service(web::to(move || {
                    let what = waiting
                        .lock()
                        .map(|w| w.clone())
                        .unwrap_or_else(|_| "start-up".into());
                    async move {
                        actix_web::HttpResponse::ServiceUnavailable()
                            .insert_header(("Retry-After", "5"))
                            .body(format!("starting: waiting for {what}"))
                    }
                }))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(addr)?
        .run();
        let handle = server.handle();
        tracing::info!(addr, "listening (starting)");
        Ok(Self {
            handle,
            server: tokio::spawn(server),
            waiting,
        })
    }

    fn waiting_for(&self, what: &str) {
        if let Ok(mut waiting) = self.waiting.lock() {
            *waiting = what.to_string();
        }
    }

    async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.server.await;
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn watch_depth(
    queue: Arc<WorkQueue>,
    metrics: Arc<Metrics>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        if let Some(depth) = queue.depth().await {
            metrics.queue_depth.set(i64::from(depth));
        }
        if let Some(owned) = queue.owned_shards() {
            metrics.work_shards_owned.set(owned as i64);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Queues the schedule's tick now and then. Every replica does; the ticks share one
/// shard (one poll at a time, across replicas) and a tick soon after the last poll is
/// skipped, so one poll runs per interval ([`Reconciler::poll_once`]).
async fn poll_periodically(
    queue: Arc<WorkQueue>,
    every: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = queue.enqueue(&WorkItem::ScheduledPoll).await {
            tracing::warn!(error = %e, "could not queue the reconciliation poll");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// A panic (caught by the pipeline, which settles the message) is logged with where it
/// happened, never its message: a message can quote values from the record.
fn log_panics_without_values() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "unknown".into());
        tracing::error!(%location, "panic (message withheld: it may quote the record)");
    }));
}
