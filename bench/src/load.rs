//! An open-loop webhook load generator: posts updates at a fixed offered rate (each request on
//! its own task, so a slow answer never delays the next send), with Telegram's secret header,
//! unique `update_id`s, bounded in count, time and requests in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::bot_process::WEBHOOK_SECRET;
use crate::closed_loop::{self, Requests};
use crate::fakes::telegram::text_update;
use crate::latency::Summary;

/// What every benchmark update says.
const QUESTION: &str = "Hi! How much is the premium plan per month?";

/// Where updates go and which ids they carry.
pub struct Target {
    pub client: reqwest::Client,
    pub url: String,
    /// The next `update_id`; shared so runs against one bot never repeat an id.
    pub next_update_id: Arc<AtomicI64>,
    /// Chat ids are `chat_base + (update_id % chats)`: that many distinct users.
    pub chat_base: i64,
    pub chats: i64,
}

impl Target {
    pub fn new(url: String, chats: i64) -> Self {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client");
        Self {
            client,
            url,
            next_update_id: Arc::new(AtomicI64::new(1)),
            chat_base: 1_000_000,
            chats: chats.max(1),
        }
    }

    /// Posts one update; the time until the status line arrived, and the status (0: no answer).
    pub async fn post(&self, update_id: i64, chat_id: i64) -> (Duration, u16) {
        let body = text_update(update_id, chat_id, QUESTION);
        let started = Instant::now();
        let sent = self
            .client
            .post(&self.url)
            .header(
                botfleet_api::contract::WEBHOOK_SECRET_HEADER,
                WEBHOOK_SECRET,
            )
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let elapsed = started.elapsed();
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                // Read the (empty) body so the connection goes back to the pool.
                let _ = response.bytes().await;
                (elapsed, status)
            }
            Err(_) => (elapsed, 0),
        }
    }

    /// The webhook's address and its requests as raw HTTP, each the next update, for
    /// [`closed_loop::run`].
    pub fn raw_requests(self: &Arc<Self>) -> (std::net::SocketAddr, Requests) {
        let url = reqwest::Url::parse(&self.url).expect("the webhook URL is a URL");
        let addr = url
            .socket_addrs(|| None)
            .ok()
            .and_then(|addrs| addrs.into_iter().next())
            .expect("the webhook URL names a loopback address");
        let path = url.path().to_owned();
        let target = self.clone();
        let requests: Requests = Arc::new(move || {
            let (update_id, chat_id) = target.next_ids();
            closed_loop::post_json(
                addr,
                &path,
                &[(
                    botfleet_api::contract::WEBHOOK_SECRET_HEADER,
                    WEBHOOK_SECRET,
                )],
                &text_update(update_id, chat_id, QUESTION),
            )
        });
        (addr, requests)
    }

    fn next_ids(&self) -> (i64, i64) {
        let update_id = self.next_update_id.fetch_add(1, Ordering::Relaxed);
        (update_id, self.chat_base + update_id % self.chats)
    }
}

/// What one open-loop run saw.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub offered_per_sec: f64,
    pub duration: Duration,
    pub sent: usize,
    pub ok: usize,
    /// Non-200 answers, transport errors and timeouts.
    pub errors: usize,
    /// Sends skipped because `max_in_flight` requests were already waiting.
    pub shed: usize,
    /// 200s per second over the run (from the first send to the last answer).
    pub achieved_per_sec: f64,
    /// Time to the status line of the 200s.
    pub latency: Summary,
    /// The worst delay of a send behind its schedule (the generator falling behind).
    pub max_send_lag: Duration,
}

impl RunResult {
    pub fn clean(&self) -> bool {
        self.errors == 0 && self.shed == 0
    }
}

/// Offers `rate` updates per second for `duration`.
pub async fn open_loop(
    target: &Arc<Target>,
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
) -> RunResult {
    let total = (rate * duration.as_secs_f64()).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let mut tasks = tokio::task::JoinSet::new();
    let mut shed = 0;
    let mut max_lag = Duration::ZERO;
    let start = tokio::time::Instant::now();
    for i in 0..total {
        let at = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(at).await;
        max_lag = max_lag.max(tokio::time::Instant::now().saturating_duration_since(at));
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            shed += 1;
            continue;
        };
        let target = target.clone();
        tasks.spawn(async move {
            let (update_id, chat_id) = target.next_ids();
            let result = target.post(update_id, chat_id).await;
            drop(permit);
            result
        });
    }
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((elapsed, 200)) => latencies.push(elapsed),
            _ => errors += 1,
        }
    }
    let wall = start.elapsed();
    let ok = latencies.len();
    RunResult {
        offered_per_sec: rate,
        duration,
        sent: total - shed,
        ok,
        errors,
        shed,
        achieved_per_sec: ok as f64 / wall.as_secs_f64(),
        latency: Summary::of(latencies),
        max_send_lag: max_lag,
    }
}

/// Posts `count` updates, each to its own new chat, as fast as `concurrency` connections
/// allow; returns the chat ids (in order) and how many were not acknowledged with 200.
pub async fn burst_new_chats(
    target: &Arc<Target>,
    first_chat: i64,
    count: usize,
    concurrency: usize,
) -> (Vec<i64>, usize) {
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let chats: Vec<i64> = (0..count as i64).map(|i| first_chat + i).collect();
    for &chat_id in &chats {
        let permit = slots.clone().acquire_owned().await.expect("never closed");
        let target = target.clone();
        tasks.spawn(async move {
            let update_id = target.next_update_id.fetch_add(1, Ordering::Relaxed);
            let (_, status) = target.post(update_id, chat_id).await;
            drop(permit);
            status
        });
    }
    let mut failed = 0;
    while let Some(joined) = tasks.join_next().await {
        if !matches!(joined, Ok(200)) {
            failed += 1;
        }
    }
    (chats, failed)
}
