//! The owners' dashboard: a Telegram Mini App served by the bot at `<webhook path>/app`.
//!
//! `GET <path>/app` is one page with no data in it; Telegram opens it with signed launch data
//! in the URL fragment, which the page sends back as `Authorization: tma <initData>` to
//! `GET <path>/app/api/view?period=day|week|month`. That endpoint checks the signature
//! ([`auth`]), answers owners only (401 bad or stale, 403 not an owner, 429 over the per-user
//! rate), and renders the view on the server ([`page`], [`svg`]) from what the owner commands
//! read ([`data`]). People of the handoff group (`handoff.notify.chatId`) who are not owners
//! see the inbox (open handoffs) only. No CORS headers: the page and its API share an origin.

pub mod auth;
pub mod data;
mod limiter;
pub mod page;
pub mod svg;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use botfleet_api::BotConfig;

use crate::db::Db;
use crate::metrics::{Metrics, OutcomeLabels};
use crate::money::Money;
use crate::telegram::TelegramClient;
use limiter::Limiter;

/// The label of the owners' menu button and of `/dashboard`'s button.
pub const BUTTON_TEXT: &str = "Dashboard";

/// Only the page's own inline script and style, data only from its own origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'";

/// What the dashboard's handlers share.
#[derive(Clone)]
pub struct DashboardState {
    pub db: Db,
    pub metrics: Arc<Metrics>,
    pub money: Arc<Money>,
    secret: [u8; 32],
    max_age: Duration,
    owners: Arc<Vec<i64>>,
    /// The handoff group, whose members see the inbox only.
    handoff_group: Option<i64>,
    telegram: TelegramClient,
    limiter: Arc<Limiter>,
    api_path: String,
}

impl DashboardState {
    /// The state for a bot with this token and config; `None` unless `dashboard.enabled`.
    pub fn new(
        config: &BotConfig,
        bot_token: &str,
        webhook_path: &str,
        ctx: &crate::context::Context,
        money: Arc<Money>,
    ) -> Option<Self> {
        let dashboard = config.dashboard_enabled()?;
        Some(Self {
            db: ctx.db.clone(),
            metrics: ctx.metrics.clone(),
            money,
            secret: auth::secret_key(bot_token),
            max_age: dashboard.max_age(),
            owners: Arc::new(config.owners.clone()),
            handoff_group: config
                .handoff
                .as_ref()
                .filter(|h| h.enabled())
                .and_then(|h| h.notify.as_ref()?.chat_id),
            telegram: ctx.telegram.clone(),
            limiter: Arc::new(Limiter::default()),
            api_path: api_path(webhook_path),
        })
    }
}

/// `<webhook path>/app`.
pub fn app_path(webhook_path: &str) -> String {
    format!("{}/app", webhook_path.trim_end_matches('/'))
}

fn api_path(webhook_path: &str) -> String {
    format!("{}/api/view", app_path(webhook_path))
}

/// Where Telegram opens the dashboard: `https://<dashboard.domain or webhook.domain><path>/app`;
/// `None` when the dashboard is off or has no domain.
pub fn app_url(config: &BotConfig, webhook_path: &str) -> Option<String> {
    let domain = config.dashboard_domain()?;
    Some(format!("https://{domain}{}", app_path(webhook_path)))
}

/// The page and its API, mounted under `webhook_path`.
pub fn router(webhook_path: &str, state: DashboardState) -> axum::Router {
    axum::Router::new()
        .route(&app_path(webhook_path), get(page_handler))
        .route(&api_path(webhook_path), get(view_handler))
        .with_state(state)
}

async fn page_handler(State(state): State<DashboardState>) -> Response {
    html(StatusCode::OK, page::shell(&state.api_path))
}

#[derive(serde::Deserialize)]
struct ViewQuery {
    period: Option<String>,
}

/// Why a request got no view, as the metric's `outcome` and the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Unauthorized,
    Forbidden,
    RateLimited,
    BadRequest,
    Error,
}

impl Refusal {
    fn outcome(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized",
            Refusal::Forbidden => "forbidden",
            Refusal::RateLimited => "rate_limited",
            Refusal::BadRequest => "bad_request",
            Refusal::Error => "error",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden => StatusCode::FORBIDDEN,
            Refusal::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Refusal::BadRequest => StatusCode::BAD_REQUEST,
            Refusal::Error => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

async fn view_handler(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(query): Query<ViewQuery>,
) -> Response {
    let (outcome, response) = match view(&state, &headers, query).await {
        Ok(body) => ("ok", html(StatusCode::OK, body)),
        Err(refusal) => (
            refusal.outcome(),
            html(refusal.status(), refusal.outcome().to_owned()),
        ),
    };
    state
        .metrics
        .dashboard_requests
        .get_or_create(&OutcomeLabels {
            outcome: outcome.to_owned(),
        })
        .inc();
    response
}

/// The steps of one view request: who asks, whether they may, how often, then the view.
async fn view(
    state: &DashboardState,
    headers: &HeaderMap,
    query: ViewQuery,
) -> Result<String, Refusal> {
    let user_id = authenticate(state, headers)?;
    if !state.limiter.allow(user_id) {
        return Err(Refusal::RateLimited);
    }
    let access = access(state, user_id).await?;
    let view = match query.period.as_deref() {
        None => data::View::default(),
        Some(text) => data::View::parse(text).ok_or(Refusal::BadRequest)?,
    };
    let now = chrono::Utc::now();
    let failed = |e: data::DataError| {
        tracing::warn!(error = %e, period = view.as_str(), "reading the dashboard failed");
        Refusal::Error
    };
    match access {
        Access::Owner => {
            let dashboard = data::load(&state.db, &state.money, view, now)
                .await
                .map_err(failed)?;
            Ok(page::view(&dashboard, state.money.limits()))
        }
        Access::Inbox => {
            let open = crate::handoff::store::list_open(&state.db)
                .await
                .map_err(|e| failed(e.into()))?;
            Ok(page::inbox_view(&open, now))
        }
    }
}

/// What a signed-in user may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Owner,
    /// A member of the handoff group: the open handoffs only.
    Inbox,
}

/// Owners see everything; members of the handoff group the inbox; anyone else nothing.
async fn access(state: &DashboardState, user_id: i64) -> Result<Access, Refusal> {
    if state.owners.contains(&user_id) {
        return Ok(Access::Owner);
    }
    if let Some(group) = state.handoff_group {
        match state.telegram.is_chat_member(group, user_id).await {
            Ok(true) => return Ok(Access::Inbox),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not check the handoff group's membership");
                return Err(Refusal::Error);
            }
        }
    }
    tracing::info!(user_id, "dashboard refused: not an owner");
    Err(Refusal::Forbidden)
}

/// The user id the `Authorization: tma <initData>` header proves. The launch data is a
/// credential: only the reason of a refusal is logged.
fn authenticate(state: &DashboardState, headers: &HeaderMap) -> Result<i64, Refusal> {
    let init_data = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("tma "))
        .ok_or(auth::AuthError::Missing);
    let verified = init_data.and_then(|data| {
        auth::verify(
            data,
            &state.secret,
            state.max_age,
            chrono::Utc::now().timestamp(),
        )
    });
    verified.map(|v| v.user_id).map_err(|e| {
        tracing::info!(reason = %e, "dashboard refused: launch data not accepted");
        Refusal::Unauthorized
    })
}

fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// `/dashboard`'s answer: the text and the `web_app` button that opens the dashboard.
pub fn command_reply(config: &BotConfig, webhook_path: &str) -> (String, Vec<(String, String)>) {
    match app_url(config, webhook_path) {
        Some(url) => (
            "Spend, leads, handoffs and broadcasts at a glance:".to_owned(),
            vec![crate::telegram::web_app_button(BUTTON_TEXT, &url)],
        ),
        None => (
            "The dashboard is off: it needs <code>dashboard.enabled: true</code> and a domain \
             (<code>dashboard.domain</code> or <code>webhook.domain</code>)."
                .to_owned(),
            vec![],
        ),
    }
}

/// Gives each owner's private chat the menu button "Dashboard" (`setChatMenuButton`). Best
/// effort and idempotent (setting it again changes nothing): failures are one warning.
pub async fn publish_menu_buttons(
    telegram: &TelegramClient,
    config: &BotConfig,
    webhook_path: &str,
) {
    let Some(url) = app_url(config, webhook_path) else {
        return;
    };
    let mut failed = 0;
    let mut first_error = None;
    for owner in &config.owners {
        if let Err(e) = telegram
            .set_web_app_menu_button(*owner, BUTTON_TEXT, &url)
            .await
        {
            failed += 1;
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        None => tracing::info!(owners = config.owners.len(), "dashboard menu buttons set"),
        Some(e) => tracing::warn!(
            failed,
            owners = config.owners.len(),
            error = %e,
            "could not set every owner's dashboard menu button; /dashboard still works"
        ),
    }
}
