//! Kubernetes Events about TelegramBots (`events.k8s.io/v1`), written as kube-runtime's
//! `Recorder` writes them: a new Event, or, when the same kind of event about the same bot
//! repeats within six minutes, a bump of the first one's `series`.
//!
//! Why not `Recorder`: it remembers every recent Event object it wrote (a few KiB each, and a
//! hash table per recorder), and prunes that memory on every publish. One recorder for the
//! fleet makes each publish cost a pass over all recent events; one per bot costs ~5 KiB per
//! bot for the life of the process. This keeps 40-odd bytes per recent event instead, pruned
//! once a minute.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
pub use kube::runtime::events::{Event, EventType};

/// The longest note an Event gets; the API server refuses longer ones.
const MAX_NOTE: usize = 1000;

/// An event about a bot, its note cut to [`MAX_NOTE`] bytes (at a character boundary).
pub fn bot_event(type_: EventType, reason: &str, action: &str, mut note: String) -> Event {
    if note.len() > MAX_NOTE {
        let mut cut = MAX_NOTE;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
    }
    Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    }
}

/// How long a repeat of an event counts as the same series (kube-runtime's choice).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// How often the memory of recent events is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// One event written recently: enough to extend its series.
struct Recent {
    name: Box<str>,
    count: i32,
    last: Instant,
}

struct Memory {
    recent: HashMap<u64, Recent>,
    pruned_at: Instant,
}

pub struct EventPublisher {
    client: Client,
    /// `reportingController`.
    controller: String,
    /// `reportingInstance` (the pod name).
    instance: String,
    memory: Mutex<Memory>,
}

impl EventPublisher {
    pub fn new(client: Client, controller: String, instance: Option<String>) -> Self {
        Self {
            client,
            instance: instance.unwrap_or_else(|| controller.clone()),
            controller,
            memory: Mutex::new(Memory {
                recent: HashMap::new(),
                pruned_at: Instant::now(),
            }),
        }
    }

    /// Recent events remembered (tests and benchmarks).
    pub fn remembered(&self) -> usize {
        self.lock().recent.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `event` about the object `regarding` (in its namespace).
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = series_key(event, regarding);
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let now = Timestamp::now();
        let repeat = {
            let mut memory = self.lock();
            if memory.pruned_at.elapsed() >= PRUNE_EVERY {
                memory
                    .recent
                    .retain(|_, r| r.last.elapsed() < SERIES_WINDOW);
                memory.pruned_at = Instant::now();
            }
            match memory.recent.get_mut(&key) {
                Some(recent) if recent.last.elapsed() < SERIES_WINDOW => {
                    recent.count += 1;
                    recent.last = Instant::now();
                    Some((recent.name.clone(), recent.count))
                }
                _ => None,
            }
        };
        if let Some((name, count)) = repeat {
            let series = EventSeries {
                count,
                last_observed_time: MicroTime(now),
            };
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "series": series })),
            )
            .await?;
            return Ok(());
        }
        let created = api
            .create(
                &PostParams::default(),
                &self.new_event(event, regarding, now),
            )
            .await?;
        let name = created.metadata.name.unwrap_or_default().into_boxed_str();
        self.lock().recent.insert(
            key,
            Recent {
                name,
                count: 1,
                last: Instant::now(),
            },
        );
        Ok(())
    }

    fn new_event(&self, event: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            note: event.note.clone(),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(&self.controller),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..Default::default()
        }
    }
}

/// What makes two events one series: the object, type, reason and action (as kube-runtime:
/// the note may differ).
fn series_key(event: &Event, regarding: &ObjectReference) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    (
        &regarding.uid,
        &regarding.namespace,
        &regarding.name,
        &regarding.kind,
    )
        .hash(&mut hasher);
    matches!(event.type_, EventType::Warning).hash(&mut hasher);
    event.reason.hash(&mut hasher);
    event.action.hash(&mut hasher);
    event
        .secondary
        .as_ref()
        .map(|r| (&r.uid, &r.namespace, &r.name, &r.kind))
        .hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::FakeApiServer;

    fn bot_ref(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("botfleet.dev/v1alpha1".into()),
            kind: Some("TelegramBot".into()),
            namespace: Some("bots".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        }
    }

    fn warning(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Apply".into(),
            secondary: None,
        }
    }

    #[tokio::test]
    async fn a_repeated_event_extends_the_series_of_the_first_and_others_are_new_events() {
        let server = FakeApiServer::new();
        let events = EventPublisher::new(server.client(), "botfleet-operator".into(), None);
        let a = bot_ref("a");
        events
            .publish(&warning("ApplyFailed", "first"), &a)
            .await
            .unwrap();
        events
            .publish(&warning("ApplyFailed", "again"), &a)
            .await
            .unwrap();
        events
            .publish(&warning("ApplyFailed", "and again"), &a)
            .await
            .unwrap();
        events
            .publish(&warning("InvalidSpec", "other reason"), &a)
            .await
            .unwrap();
        events
            .publish(&warning("ApplyFailed", "other bot"), &bot_ref("b"))
            .await
            .unwrap();

        let api: Api<K8sEvent> = Api::namespaced(server.client(), "bots");
        let mut written: Vec<(String, String, Option<i32>)> = api
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|e| {
                (
                    e.regarding.and_then(|r| r.name).unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.series.map(|s| s.count),
                )
            })
            .collect();
        written.sort();
        assert_eq!(
            written,
            [
                ("a".to_string(), "ApplyFailed".to_string(), Some(3)),
                ("a".to_string(), "InvalidSpec".to_string(), None),
                ("b".to_string(), "ApplyFailed".to_string(), None),
            ]
        );
        assert_eq!(events.remembered(), 3);
    }
}
