//! One outbound limiter for every message the bot sends: replies, follow-ups, budget alerts,
//! and whatever sends messages later (broadcasts, drafts, handoff relays).
//!
//! Telegram's limits for one bot: about 30 messages a second overall, one a second per chat,
//! 20 a minute per group. A `429` with `retry_after` is flood control for the whole bot, so it
//! pauses every sender of this process at once, not just the task that saw it.
//!
//! How: one dispatcher task hands out send slots. Slots are evenly spaced at this process's
//! share of the overall rate (never a burst, so any one-second window holds at most the rate),
//! a chat gets its next slot only when its own limits allow, and waiting
//! [`Priority::Interactive`] requests (replies) always get the next slot before
//! [`Priority::Bulk`] ones (follow-ups, later broadcasts): a reply waits at most one slot for
//! bulk traffic, however much is queued. teloxide's `Throttle` adaptor spaces requests the
//! same way but has neither priorities nor a shared `retry_after` pause, hence this module.
//!
//! Across replicas: each process takes `1/replicas` of the overall rate
//! (`BOTFLEET_TELEGRAM_SENDERS`, rendered by the operator); see docs/architecture.md.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use teloxide::RequestError;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use super::TelegramError;

/// Telegram's overall limit for one bot, messages per second.
pub const TELEGRAM_MESSAGES_PER_SEC: u32 = 30;
/// Telegram's limit per chat: one message a second.
pub const CHAT_INTERVAL: Duration = Duration::from_secs(1);
/// Telegram's limit per group, supergroup or channel: 20 messages a minute.
pub const GROUP_MESSAGES_PER_MIN: usize = 20;
const GROUP_WINDOW: Duration = Duration::from_secs(60);

/// How many 429s one message sits through before its sender gets the error (and retries later).
const MAX_RETRY_AFTER_WAITS: u32 = 5;
/// A 429 asking for longer than this fails the send at once (the pause still applies to all).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Chat windows are pruned once this many chats are tracked.
const PRUNE_CHATS_OVER: usize = 10_000;

/// Who waits for the message: a person in a conversation, or nobody in particular.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Replies, commands, owner alerts: sent before anything bulk.
    Interactive,
    /// Follow-ups, broadcasts: sent when no interactive message is waiting.
    Bulk,
}

/// The limits one process keeps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The gap between two sends of this process (its share of the overall rate).
    pub slot: Duration,
    /// The gap between two sends to one chat.
    pub per_chat: Duration,
    /// Sends per minute to one group (a chat with a negative id).
    pub group_per_minute: usize,
}

impl Limits {
    /// Telegram's limits, the overall rate shared by `senders` processes.
    pub fn telegram(senders: u32) -> Self {
        Self::with_rate(TELEGRAM_MESSAGES_PER_SEC, senders)
    }

    /// `messages_per_sec` overall (a bot with raised limits), shared by `senders` processes.
    pub fn with_rate(messages_per_sec: u32, senders: u32) -> Self {
        let per_process = f64::from(messages_per_sec.max(1)) / f64::from(senders.max(1));
        // Rounded up to the nanosecond: never faster than the rate.
        let slot = Duration::from_nanos((1e9 / per_process).ceil() as u64);
        Self {
            slot,
            per_chat: CHAT_INTERVAL,
            group_per_minute: GROUP_MESSAGES_PER_MIN,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::telegram(1)
    }
}

struct Waiter {
    chat_id: i64,
    /// Kept to the chat's own limits. Drafts (previews of a reply being written) are not
    /// messages: they take a slot of the overall rate but not the chat's one-a-second, or the
    /// reply itself would wait behind its last draft.
    per_chat: bool,
    grant: oneshot::Sender<()>,
}

struct Shared {
    /// Flood control: no slot is handed out before this instant.
    paused_until: Mutex<Option<Instant>>,
    /// Wakes the dispatcher when a pause is set.
    wake: Notify,
}

impl Shared {
    fn paused_until(&self) -> Option<Instant> {
        *self.paused_until.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The limiter. Cheap to clone; all clones share one dispatcher and one pause.
#[derive(Clone)]
pub struct Outbound {
    requests: mpsc::UnboundedSender<(Priority, Waiter)>,
    shared: Arc<Shared>,
    limits: Limits,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// Starts the dispatcher on the current Tokio runtime; it ends when the last clone is dropped.
    pub fn new(limits: Limits) -> Self {
        let (requests, incoming) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            paused_until: Mutex::new(None),
            wake: Notify::new(),
        });
        tokio::spawn(dispatch(incoming, shared.clone(), limits));
        Self {
            requests,
            shared,
            limits,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Waits for this chat's next send slot.
    pub async fn acquire(&self, chat_id: i64, priority: Priority) -> Result<(), TelegramError> {
        self.wait_for_slot(chat_id, true, priority).await
    }

    /// Waits for a slot of the overall rate for a draft: not spaced from the chat's messages
    /// (see [`Waiter::per_chat`]), not counted as one of them.
    pub async fn acquire_draft(&self, chat_id: i64) -> Result<(), TelegramError> {
        self.wait_for_slot(chat_id, false, Priority::Interactive)
            .await
    }

    async fn wait_for_slot(
        &self,
        chat_id: i64,
        per_chat: bool,
        priority: Priority,
    ) -> Result<(), TelegramError> {
        let (grant, granted) = oneshot::channel();
        self.requests
            .send((
                priority,
                Waiter {
                    chat_id,
                    per_chat,
                    grant,
                },
            ))
            .map_err(|_| TelegramError::LimiterStopped)?;
        granted.await.map_err(|_| TelegramError::LimiterStopped)
    }

    /// Flood control: no sender of this process gets a slot for `wait`.
    pub fn pause_all(&self, wait: Duration) {
        let until = Instant::now() + wait;
        {
            let mut paused = self
                .shared
                .paused_until
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if paused.is_none_or(|p| p < until) {
                *paused = Some(until);
            }
        }
        self.shared.wake.notify_one();
    }

    /// True while a `retry_after` pause is on (best-effort calls such as "typing…" skip it).
    pub fn is_paused(&self) -> bool {
        self.shared
            .paused_until()
            .is_some_and(|until| until > Instant::now())
    }

    /// Sends one message through the limiter: waits for a slot, makes the request, and on a
    /// 429 pauses every sender for `retry_after` and tries again (up to a few times).
    pub async fn send<T, F, Fut>(
        &self,
        chat_id: i64,
        priority: Priority,
        mut request: F,
    ) -> Result<T, TelegramError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RequestError>>,
    {
        let mut waits = 0;
        loop {
            self.acquire(chat_id, priority).await?;
            match request().await {
                Ok(sent) => return Ok(sent),
                Err(RequestError::RetryAfter(seconds)) => {
                    let wait = seconds.duration();
                    self.pause_all(wait);
                    waits += 1;
                    if wait > MAX_RETRY_AFTER || waits > MAX_RETRY_AFTER_WAITS {
                        return Err(TelegramError::RetryAfter(wait));
                    }
                    tracing::warn!(
                        chat_id,
                        wait_secs = wait.as_secs(),
                        "Telegram flood control: every sender pauses as asked"
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Per-chat history: when the chat last got a message, and (groups) the last minute's sends.
#[derive(Default)]
struct ChatWindow {
    last: Option<Instant>,
    minute: VecDeque<Instant>,
}

struct ChatWindows {
    limits: Limits,
    chats: HashMap<i64, ChatWindow>,
}

impl ChatWindows {
    fn is_group(chat_id: i64) -> bool {
        // Telegram's ids: users are positive, groups, supergroups and channels negative.
        chat_id < 0
    }

    /// The earliest instant this chat may get its next message.
    fn ready_at(&self, chat_id: i64) -> Option<Instant> {
        let window = self.chats.get(&chat_id)?;
        let mut at = window.last.map(|last| last + self.limits.per_chat);
        if Self::is_group(chat_id) && window.minute.len() >= self.limits.group_per_minute {
            let oldest = window.minute[window.minute.len() - self.limits.group_per_minute];
            at = at.max(Some(oldest + GROUP_WINDOW));
        }
        at
    }

    fn record(&mut self, chat_id: i64, now: Instant) {
        if self.chats.len() > PRUNE_CHATS_OVER {
            self.chats.retain(|_, w| {
                w.last
                    .is_some_and(|last| now.duration_since(last) < GROUP_WINDOW)
            });
        }
        let window = self.chats.entry(chat_id).or_default();
        window.last = Some(now);
        if Self::is_group(chat_id) {
            while window
                .minute
                .front()
                .is_some_and(|t| now.duration_since(*t) >= GROUP_WINDOW)
            {
                window.minute.pop_front();
            }
            window.minute.push_back(now);
        }
    }
}

#[derive(Default)]
struct Queues {
    interactive: VecDeque<Waiter>,
    bulk: VecDeque<Waiter>,
}

enum Pick {
    /// The slot went to a waiter; the chat to record, when it keeps to the chat's limits.
    Granted(Option<i64>),
    NotBefore(Instant),
    Empty,
}

impl Queues {
    fn push(&mut self, priority: Priority, waiter: Waiter) {
        match priority {
            Priority::Interactive => self.interactive.push_back(waiter),
            Priority::Bulk => self.bulk.push_back(waiter),
        }
    }

    fn is_empty(&self) -> bool {
        self.interactive.is_empty() && self.bulk.is_empty()
    }

    /// Grants the slot to the first interactive waiter whose chat may send now, else to the
    /// first such bulk waiter; otherwise says when the earliest waiter's chat opens.
    fn grant(&mut self, chats: &ChatWindows, now: Instant) -> Pick {
        let mut earliest: Option<Instant> = None;
        for queue in [&mut self.interactive, &mut self.bulk] {
            let mut i = 0;
            while i < queue.len() {
                let waiter = &queue[i];
                if waiter.grant.is_closed() {
                    // The sender gave up (its task was cancelled).
                    queue.remove(i);
                    continue;
                }
                let ready_at = if waiter.per_chat {
                    chats.ready_at(waiter.chat_id)
                } else {
                    None
                };
                match ready_at {
                    Some(at) if at > now => {
                        earliest = Some(earliest.map_or(at, |e| e.min(at)));
                        i += 1;
                    }
                    _ => {
                        let waiter = queue.remove(i).expect("index in range");
                        if waiter.grant.send(()).is_ok() {
                            return Pick::Granted(waiter.per_chat.then_some(waiter.chat_id));
                        }
                    }
                }
            }
        }
        earliest.map_or(Pick::Empty, Pick::NotBefore)
    }
}

async fn dispatch(
    mut incoming: mpsc::UnboundedReceiver<(Priority, Waiter)>,
    shared: Arc<Shared>,
    limits: Limits,
) {
    let mut queues = Queues::default();
    let mut chats = ChatWindows {
        limits,
        chats: HashMap::new(),
    };
    let mut next_slot = Instant::now();
    let mut open = true;
    loop {
        while let Ok((priority, waiter)) = incoming.try_recv() {
            queues.push(priority, waiter);
        }
        if !open && queues.is_empty() {
            return;
        }
        let now = Instant::now();
        let opens = shared
            .paused_until()
            .map_or(next_slot, |p| p.max(next_slot));
        let wake_at = if opens > now {
            Some(opens)
        } else {
            match queues.grant(&chats, now) {
                Pick::Granted(chat_id) => {
                    if let Some(chat_id) = chat_id {
                        chats.record(chat_id, now);
                    }
                    // From the grant, not the schedule: a late wake-up (the timer rounds up to
                    // the millisecond, a busy runtime adds more) costs a little rate but never
                    // puts two slots closer than `slot`.
                    next_slot = now + limits.slot;
                    continue;
                }
                Pick::NotBefore(at) => Some(at),
                Pick::Empty => None,
            }
        };
        let sleep = async {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = incoming.recv(), if open => match received {
                Some((priority, waiter)) => queues.push(priority, waiter),
                None => open = false,
            },
            _ = shared.wake.notified() => {}
            _ = sleep => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Acquires one slot per chat in `chats` concurrently; returns when each was granted,
    /// relative to the start, in grant order.
    async fn grant_times(outbound: &Outbound, chats: &[(i64, Priority)]) -> Vec<(i64, Duration)> {
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for &(chat, priority) in chats {
            let outbound = outbound.clone();
            tasks.spawn(async move {
                outbound.acquire(chat, priority).await.unwrap();
                (chat, start.elapsed())
            });
            // Queue in this order.
            tokio::task::yield_now().await;
        }
        let mut times = tasks.join_all().await;
        times.sort_by_key(|(_, at)| *at);
        times
    }

    /// [`grant_times`] without the chats: when each slot was granted, in order.
    async fn grant_offsets(outbound: &Outbound, chats: &[(i64, Priority)]) -> Vec<Duration> {
        grant_times(outbound, chats)
            .await
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    fn max_in_window(times: &[Duration], window: Duration) -> usize {
        (0..times.len())
            .map(|i| {
                times[i..]
                    .iter()
                    .take_while(|t| **t - times[i] < window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn the_overall_rate_is_never_exceeded_in_any_second() {
        let outbound = Outbound::new(Limits::telegram(1));
        let chats: Vec<_> = (1..=200).map(|c| (c, Priority::Interactive)).collect();
        let times = grant_offsets(&outbound, &chats).await;
        assert_eq!(times.len(), 200);
        assert_eq!(max_in_window(&times, Duration::from_secs(1)), 30);
        // And hardly slower: 199 slots of 1/30 s, each rounded up to the timer's millisecond.
        assert!(
            times[199] < Duration::from_millis(6_800),
            "{:?}",
            times[199]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn replicas_share_the_rate() {
        let outbound = Outbound::new(Limits::telegram(3));
        let chats: Vec<_> = (1..=40).map(|c| (c, Priority::Bulk)).collect();
        let times = grant_offsets(&outbound, &chats).await;
        assert_eq!(max_in_window(&times, Duration::from_secs(1)), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn one_message_a_second_per_chat() {
        let outbound = Outbound::new(Limits::telegram(1));
        let times = grant_times(
            &outbound,
            &[
                (7, Priority::Interactive),
                (7, Priority::Interactive),
                (8, Priority::Interactive),
                (7, Priority::Interactive),
            ],
        )
        .await;
        let of_7: Vec<Duration> = times
            .iter()
            .filter(|(c, _)| *c == 7)
            .map(|(_, t)| *t)
            .collect();
        assert_eq!(of_7.len(), 3);
        assert!(of_7[1] - of_7[0] >= Duration::from_secs(1), "{of_7:?}");
        assert!(of_7[2] - of_7[1] >= Duration::from_secs(1), "{of_7:?}");
        // Another chat is not held up by chat 7's wait.
        let of_8 = times.iter().find(|(c, _)| *c == 8).unwrap().1;
        assert!(of_8 < Duration::from_millis(100), "{of_8:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn twenty_messages_a_minute_per_group() {
        let outbound = Outbound::new(Limits::telegram(1));
        let chats = vec![(-100_500, Priority::Interactive); 25];
        let times = grant_offsets(&outbound, &chats).await;
        assert_eq!(max_in_window(&times, Duration::from_secs(60)), 20);
        assert!(times[20] >= Duration::from_secs(60), "{:?}", times[20]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_sender() {
        let outbound = Outbound::new(Limits::telegram(1));
        outbound.acquire(1, Priority::Interactive).await.unwrap();
        outbound.pause_all(Duration::from_secs(5));
        assert!(outbound.is_paused());
        let times = grant_times(
            &outbound,
            &[
                (2, Priority::Interactive),
                (3, Priority::Bulk),
                (4, Priority::Interactive),
            ],
        )
        .await;
        for (chat, at) in times {
            assert!(at >= Duration::from_secs(5), "chat {chat} sent at {at:?}");
        }
        assert!(!outbound.is_paused());
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_overtakes_a_queued_broadcast() {
        let outbound = Outbound::new(Limits::telegram(1));
        let broadcast: Vec<_> = (1..=300).map(|c| (c, Priority::Bulk)).collect();
        let bulk = {
            let outbound = outbound.clone();
            tokio::spawn(async move { grant_times(&outbound, &broadcast).await })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        let start = Instant::now();
        outbound
            .acquire(10_000, Priority::Interactive)
            .await
            .unwrap();
        let waited = start.elapsed();
        assert!(
            waited <= Limits::telegram(1).slot,
            "the reply waited {waited:?} behind bulk messages"
        );
        assert_eq!(bulk.await.unwrap().len(), 300);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_sender_gives_its_slot_away() {
        let outbound = Outbound::new(Limits::telegram(1));
        outbound.acquire(1, Priority::Interactive).await.unwrap();
        // Chat 1 must wait a second; its caller gives up before.
        let cancelled = tokio::time::timeout(
            Duration::from_millis(100),
            outbound.acquire(1, Priority::Interactive),
        )
        .await;
        assert!(cancelled.is_err());
        let start = Instant::now();
        outbound.acquire(2, Priority::Bulk).await.unwrap();
        assert!(start.elapsed() < Duration::from_millis(50));
    }
}
