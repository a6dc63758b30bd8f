use std::future::Future;
use std::time::Duration;

use axum::Router;
use crm_kafka::consumer::{self, Subscription};
use crm_kafka::Handler;
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::middleware::{trace_context, track_metrics};
use crate::schedule::Schedule;
use crate::Base;

/// A part ready to serve: its listener is bound (port 0 gives a free port, see
/// [`PartServer::port`]) so tests start the real thing in-process.
pub struct PartServer {
    base: Base,
    listener: TcpListener,
    router: Router,
    background: Vec<Background>,
}

/// How often each part purges its record of applied messages past the dedupe retention.
const PURGE_PROCESSED_EVERY: Duration = Duration::from_secs(3600);

/// The hourly purge of `processed_messages` rows older than `CRM_KAFKA__DEDUPE_RETENTION_HOURS`,
/// on one replica per tick.
fn purge_processed_task(
    base: &Base,
) -> impl FnOnce(CancellationToken) -> BoxFuture<'static, ()> + Send + 'static {
    let pool = base.pool.clone();
    let keep = base.config.kafka.dedupe_retention;
    move |shutdown| {
        let schedule = Schedule::every("kafka.processed_messages.purge", PURGE_PROCESSED_EVERY);
        Box::pin(crate::schedule::run(
            pool.clone(),
            schedule,
            shutdown,
            move || {
                let pool = pool.clone();
                async move {
                    let deleted = crate::schedule::purge_processed(&pool, keep).await?;
                    if deleted > 0 {
                        tracing::info!(deleted, "applied-message records purged past retention");
                    }
                    Ok(())
                }
            },
        ))
    }
}

/// A task that runs beside HTTP until shutdown (a job worker, a scheduler).
type Background = Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, ()> + Send>;

impl PartServer {
    /// Binds the part's listen address and assembles its API with the operational routes and
    /// middleware.
    pub async fn bind(base: Base, api: Router) -> anyhow::Result<Self> {
        let token = base.config.service_token.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "CRM_SERVICE_TOKEN is not set: every part and the gateway need the same secret of \
                 at least 32 characters (for example `openssl rand -hex 32`) to close the \
                 internal APIs to all but the gateway"
            )
        })?;
        let listener = TcpListener::bind(base.config.listen).await?;
        let api = base
            .config
            .http
            .apply(api.layer(axum::middleware::from_fn_with_state(
                token,
                crate::token::require,
            )));
        let router = crate::limits::problem_answers(api.merge(base.ops_routes()))
            .layer(axum::middleware::from_fn(trace_context))
            .layer(axum::middleware::from_fn_with_state(
                base.metrics.clone(),
                track_metrics,
            ));
        let purge = purge_processed_task(&base);
        Ok(Self {
            base,
            listener,
            router,
            background: Vec::new(),
        }
        .with_task(purge))
    }

    /// Adds a task that starts with the part and is given its shutdown token (a job worker, a
    /// scheduler); the drain waits for it after the consumer stopped.
    pub fn with_task<F, Fut>(mut self, task: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.background
            .push(Box::new(move |shutdown| Box::pin(task(shutdown))));
        self
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    /// Serves HTTP and the outbox relay until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.run_inner::<NoHandler>(None, shutdown).await
    }

    /// Serves HTTP, consumes `subscription` with `handler`, and relays the outbox until
    /// `shutdown`. Then drains in order: HTTP stops taking requests and finishes those in
    /// flight; the consumer finishes its message and commits; the relay publishes what was
    /// committed; the producer flushes.
    pub async fn run_with_consumer<H: Handler>(
        self,
        subscription: Subscription,
        handler: H,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        self.run_inner(Some((subscription, handler)), shutdown)
            .await
    }

    async fn run_inner<H: Handler>(
        self,
        consumer: Option<(Subscription, H)>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let Self {
            base,
            listener,
            router,
            background,
        } = self;
        tracing::info!(part = base.part, addr = ?listener.local_addr().ok(), "serving");
        let relay_stop = CancellationToken::new();
        let relay = tokio::spawn(base.relay.clone().run(relay_stop.clone()));
        let tasks: Vec<_> = background
            .into_iter()
            .map(|task| tokio::spawn(task(shutdown.clone())))
            .collect();
        let consumer_task = consumer.map(|(subscription, handler)| {
            let config = base.config.kafka.clone();
            let producer = base.producer.clone();
            let metrics = base.metrics.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                // Whatever ends the consumer (shutdown, an error, a panic) ends the part: a
                // part serving HTTP but consuming nothing would look alive and do no work,
                // while a part that exits is restarted.
                let _stop_part = stop.clone().drop_guard();
                consumer::run(&config, subscription, handler, producer, metrics, stop).await
            })
        });
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await;
        // If HTTP failed on its own, stop the rest too.
        shutdown.cancel();
        let consumed = match consumer_task {
            None => Ok(()),
            Some(task) => match task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => {
                    tracing::error!(error = %format!("{e:#}"), "consumer failed");
                    Err(e)
                }
                Err(e) => {
                    tracing::error!(error = %e, "consumer task failed");
                    Err(anyhow::anyhow!("consumer task failed: {e}"))
                }
            },
        };
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "background task failed");
            }
        }
        relay_stop.cancel();
        if let Err(e) = relay.await {
            tracing::error!(error = %e, "outbox relay task failed");
        }
        base.producer.flush(Duration::from_secs(10)).await;
        tracing::info!(part = base.part, "stopped");
        served?;
        consumed
    }
}

/// A part that serves HTTP and consumes topics: what [`PartServer::run_with_consumer`] runs,
/// bundled so that a part's `build` returns one value with `port()` and `run()`.
pub struct ConsumerApp<H> {
    server: PartServer,
    subscription: Subscription,
    handler: H,
}

impl<H: Handler> ConsumerApp<H> {
    /// A bound server with what it consumes and how it applies messages.
    pub fn new(server: PartServer, subscription: Subscription, handler: H) -> Self {
        Self {
            server,
            subscription,
            handler,
        }
    }

    /// The bound HTTP port.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Runs until `shutdown`, then drains (see [`PartServer::run_with_consumer`]).
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.server
            .run_with_consumer(self.subscription, self.handler, shutdown)
            .await
    }
}

/// The handler type of a part that consumes nothing.
struct NoHandler;

impl Handler for NoHandler {
    async fn handle(
        &self,
        _: &crm_envelope::Envelope,
        _: &crm_kafka::MessageMeta,
    ) -> Result<(), crm_kafka::HandleError> {
        Ok(())
    }
}
