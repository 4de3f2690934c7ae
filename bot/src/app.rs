//! `serve`: the whole bot process — intake (webhook or polling), workers, operations HTTP, and
//! with embedded SQLite the scheduler too — with a graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use botfleet_api::Mode;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{Secret, Settings};
use crate::context::Context;
use crate::conversation::Pipeline;
use crate::db::{Db, Dialect};
use crate::http::{self, ops, webhook};
use crate::metrics::Metrics;
use crate::money::Money;
use crate::worker::Workers;

/// Connects, migrates and builds the shared handles.
pub async fn build_context(settings: Settings) -> anyhow::Result<(Context, Arc<Money>)> {
    let money = Arc::new(Money::from_config(&settings.bot).context("config")?);
    let db = Db::connect(settings.database_url.expose()).await?;
    db.migrate().await?;
    let telegram = crate::telegram::TelegramClient::with_limits(
        settings.telegram_token.expose(),
        &settings.telegram_api_url,
        settings.telegram_limits,
    )?;
    let ctx = Context::new(
        settings,
        db,
        Arc::new(Metrics::default()),
        telegram,
        money.clone(),
    )?;
    Ok((ctx, money))
}

/// Runs until `shutdown` fires; then stops intake, lets in-flight work finish within the grace
/// period, leaves the rest in the inbox, and returns.
pub async fn serve(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let (ctx, money) = build_context(settings).await?;
    serve_with(ctx, money, shutdown).await
}

pub async fn serve_with(
    ctx: Context,
    money: Arc<Money>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let settings = ctx.settings.clone();
    // Before anything is served: a source that cannot be read stops the start.
    let knowledge = crate::knowledge::Knowledge::load(&settings.bot, &settings.knowledge_dir)
        .await
        .context("knowledge")?;
    knowledge.observe(&ctx.metrics);
    if !knowledge.is_empty() {
        tracing::info!(
            tokens = knowledge.loaded_tokens,
            cut_tokens = knowledge.cut_tokens,
            "owner knowledge in the system prompt"
        );
    }
    let accepting = Arc::new(AtomicBool::new(true));
    let wake = Arc::new(Notify::new());
    let stop_intake = CancellationToken::new();
    let stop_workers = CancellationToken::new();
    let stop_http = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();

    let ops_listener = http::bind(settings.metrics_addr, "metrics").await?;
    tracing::info!(addr = %ops_listener.local_addr()?, "operations endpoints listening (/healthz /readyz /metrics /api/v1/usage)");
    let ops_router = ops::router(ops::OpsState {
        db: ctx.db.clone(),
        metrics: ctx.metrics.clone(),
        money: money.clone(),
        accepting: accepting.clone(),
    });
    tasks.spawn(http::serve_until(
        ops_listener,
        ops_router,
        stop_http.clone(),
    ));

    let dashboard = crate::dashboard::DashboardState::new(
        &settings.bot,
        settings.telegram_token.expose(),
        settings.webhook_path(),
        &ctx,
        money.clone(),
    )
    .map(|state| crate::dashboard::router(settings.webhook_path(), state));
    match settings.bot.mode {
        Mode::Webhook => {
            let secret = settings
                .webhook_secret
                .clone()
                .unwrap_or_else(|| Secret::new(""));
            let listener = http::bind(settings.http_addr, "webhook").await?;
            tracing::info!(addr = %listener.local_addr()?, path = settings.webhook_path(), "webhook listening");
            let router = webhook::router(
                settings.webhook_path(),
                webhook::IntakeState {
                    inbox: crate::inbox::Writer::spawn(
                        ctx.db.clone(),
                        ctx.metrics.inbox_batch_rows.clone(),
                    ),
                    metrics: ctx.metrics.clone(),
                    secret,
                    wake: wake.clone(),
                    accepting: accepting.clone(),
                },
            )
            .merge(dashboard.unwrap_or_default());
            // The webhook keeps answering (503) while workers drain, so it stops with the ops port.
            tasks.spawn(http::serve_until(listener, router, stop_http.clone()));
        }
        Mode::Polling => {
            if let Some(router) = dashboard {
                let listener = http::bind(settings.http_addr, "dashboard").await?;
                tracing::info!(addr = %listener.local_addr()?, path = crate::dashboard::app_path(settings.webhook_path()), "dashboard listening");
                tasks.spawn(http::serve_until(listener, router, stop_http.clone()));
            }
            let (ctx, wake, stop) = (ctx.clone(), wake.clone(), stop_intake.clone());
            tasks.spawn(async move {
                crate::polling::run(ctx, wake, stop).await;
                Ok(())
            });
        }
    }

    release_dead_claims(&ctx).await;

    // Telegram's command menu: best effort, in the background, never in the way of serving.
    let (telegram, owners) = (ctx.telegram.clone(), settings.bot.owners.clone());
    tokio::spawn(
        async move { crate::conversation::commands::publish_menu(&telegram, &owners).await },
    );
    let (telegram, settings_for_menu) = (ctx.telegram.clone(), settings.clone());
    tokio::spawn(async move {
        let s = &settings_for_menu;
        crate::dashboard::publish_menu_buttons(&telegram, &s.bot, s.webhook_path()).await
    });

    let pipeline = Arc::new(Pipeline::new(ctx.clone(), money.clone()).with_knowledge(knowledge));
    // Every process: owner messages still to deliver, auto-resume, the handoff gauges.
    {
        let (ctx, handoffs, stop) = (ctx.clone(), pipeline.handoff.clone(), stop_intake.clone());
        tasks.spawn(async move {
            crate::handoff::run(ctx, handoffs, stop).await;
            Ok(())
        });
    }
    let workers = Workers {
        ctx: ctx.clone(),
        pipeline,
        wake: wake.clone(),
        id: crate::config::process_id(),
    };
    let grace = settings.shutdown_grace;
    let worker_count = settings.workers;
    let workers_done = tokio::spawn(workers.run(worker_count, stop_workers.clone(), grace));

    if ctx.db.dialect == Dialect::Sqlite {
        // Embedded database: one pod, so the scheduler runs here instead of its own Deployment.
        let (ctx, money, stop) = (ctx.clone(), money.clone(), stop_intake.clone());
        tasks.spawn(async move {
            crate::scheduler::run(ctx, money, crate::scheduler::LeadershipMode::Always, stop)
                .await
                .map_err(|e| std::io::Error::other(format!("scheduler: {e:#}")))
        });
    }

    let housekeeping = tokio::spawn(housekeeping(ctx.clone(), stop_intake.clone()));
    tracing::info!(mode = ?settings.bot.mode, workers = worker_count, database = ?ctx.db.dialect, "bot started");

    shutdown.cancelled().await;
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: intake stopped, finishing in-flight work"
    );
    accepting.store(false, Ordering::Relaxed);
    stop_intake.cancel();
    stop_workers.cancel();
    let _ = workers_done.await;
    let _ = housekeeping.await;
    stop_http.cancel();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "task ended with an error"),
            Err(e) if e.is_cancelled() => {}
            Err(e) => tracing::warn!(error = %e, "task panicked"),
        }
    }
    ctx.db.pool.close().await;
    tracing::info!("bot stopped");
    Ok(())
}

/// Refreshes the backlog gauge and prunes old inbox rows.
async fn housekeeping(ctx: Context, stop: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    let mut last_prune = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match crate::inbox::pending_count(&ctx.db).await {
            Ok(n) => {
                ctx.metrics.inbox_pending.set(n);
            }
            Err(e) => tracing::debug!(error = %e, "counting the inbox failed"),
        }
        if last_prune.elapsed() > std::time::Duration::from_secs(600) {
            last_prune = std::time::Instant::now();
            if let Err(e) =
                crate::inbox::prune(&ctx.db, chrono::Utc::now().timestamp_millis()).await
            {
                tracing::warn!(error = %e, "pruning the inbox failed");
            }
        }
    }
}

/// Gives back, at start, the inbox claims that can only belong to dead processes, so that a
/// restarted bot answers what its predecessor left in flight at once instead of after the
/// claim timeout. With embedded SQLite there is one process by design: every claim is a dead
/// one's. With PostgreSQL only this pod's own earlier containers are known dead (a container
/// restart keeps `POD_NAME`; claims are `<pod>-<random>-<worker>`); another pod's claims
/// expire after `BOTFLEET_INBOX_CLAIM_TIMEOUT` while its heartbeat is gone.
async fn release_dead_claims(ctx: &Context) {
    let prefix = match ctx.db.dialect {
        Dialect::Sqlite => Some(String::new()),
        Dialect::Postgres => std::env::var(crate::config::env::POD_NAME)
            .ok()
            .filter(|pod| !pod.is_empty())
            .map(|pod| format!("{pod}-")),
    };
    let Some(prefix) = prefix else {
        return;
    };
    match crate::inbox::release_all(&ctx.db, &prefix).await {
        Ok(0) => {}
        Ok(rows) => tracing::info!(rows, "took back updates a previous process left in flight"),
        Err(e) => {
            tracing::warn!(error = %e, "could not release old claims; they expire on their own")
        }
    }
}
