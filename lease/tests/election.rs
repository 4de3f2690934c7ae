//! Leader election against an in-memory Lease API with resourceVersion checks.

mod fake_apiserver;

use std::time::Duration;

use botfleet_lease::{LeaderElector, LeaseConfig};
use fake_apiserver::FakeApiServer;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

const NS: &str = "bots";
const NAME: &str = "sales-bot-scheduler";

fn elector(api: &FakeApiServer, identity: &str) -> LeaderElector {
    LeaderElector::new(api.client(), LeaseConfig::new(NAME, NS, identity))
}

fn fast_elector(api: &FakeApiServer, identity: &str) -> LeaderElector {
    let mut config = LeaseConfig::new(NAME, NS, identity);
    config.lease_duration = Duration::from_secs(2);
    config.renew_interval = Duration::from_millis(100);
    LeaderElector::new(api.client(), config)
}

fn spec(api: &FakeApiServer) -> LeaseSpec {
    api.lease(NS, NAME).expect("lease exists").spec.unwrap()
}

fn holder(api: &FakeApiServer) -> Option<String> {
    spec(api).holder_identity
}

/// Pretends the holder last renewed `secs` seconds ago (it was frozen or died).
fn age_lease(api: &FakeApiServer, secs: i64) {
    api.edit(NS, NAME, |lease| {
        let spec = lease.spec.as_mut().unwrap();
        spec.renew_time = Some(MicroTime(
            Timestamp::now() - SignedDuration::from_secs(secs),
        ));
    });
}

#[tokio::test]
async fn acquires_an_absent_lease_and_renews_it() {
    let api = FakeApiServer::default();
    let a = elector(&api, "pod-a");
    assert!(a.try_acquire_or_renew().await.unwrap());
    let first = spec(&api);
    assert_eq!(first.holder_identity.as_deref(), Some("pod-a"));
    assert_eq!(first.lease_duration_seconds, Some(15));
    assert_eq!(first.lease_transitions, Some(0));

    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(a.try_acquire_or_renew().await.unwrap());
    let renewed = spec(&api);
    assert_eq!(renewed.holder_identity.as_deref(), Some("pod-a"));
    assert!(renewed.renew_time > first.renew_time, "renewTime moves on");
    assert_eq!(
        renewed.acquire_time, first.acquire_time,
        "acquireTime stays"
    );
    assert_eq!(
        renewed.lease_transitions,
        Some(0),
        "renewal is no transition"
    );
}

#[tokio::test]
async fn a_valid_lease_of_another_holder_is_not_taken() {
    let api = FakeApiServer::default();
    assert!(elector(&api, "pod-a").try_acquire_or_renew().await.unwrap());
    let b = elector(&api, "pod-b");
    assert!(!b.try_acquire_or_renew().await.unwrap());
    assert_eq!(holder(&api).as_deref(), Some("pod-a"));
}

#[tokio::test]
async fn loses_the_lease_when_another_took_it_over() {
    let api = FakeApiServer::default();
    let a = elector(&api, "pod-a");
    let b = elector(&api, "pod-b");
    assert!(a.try_acquire_or_renew().await.unwrap());
    // pod-a freezes for longer than the lease; pod-b takes over and keeps renewing.
    age_lease(&api, 20);
    assert!(b.try_acquire_or_renew().await.unwrap());
    assert!(
        !a.try_acquire_or_renew().await.unwrap(),
        "pod-a must see it lost"
    );
    assert_eq!(holder(&api).as_deref(), Some("pod-b"));
    assert_eq!(spec(&api).lease_transitions, Some(1));
}

#[tokio::test]
async fn takes_over_from_a_dead_holder_after_the_lease_duration() {
    let api = FakeApiServer::default();
    api.insert(Lease {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(NS.into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("pod-dead".into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::now() - SignedDuration::from_secs(10))),
            lease_transitions: Some(4),
            ..LeaseSpec::default()
        }),
    });
    let b = elector(&api, "pod-b");
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "10 s old: still valid"
    );
    age_lease(&api, 16);
    assert!(b.try_acquire_or_renew().await.unwrap(), "16 s old: expired");
    assert_eq!(holder(&api).as_deref(), Some("pod-b"));
    assert_eq!(spec(&api).lease_transitions, Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_candidates_yield_exactly_one_leader() {
    let mut conflicts = 0;
    for round in 0..20 {
        let api = FakeApiServer::default();
        let electors: Vec<LeaderElector> =
            (0..4).map(|i| elector(&api, &format!("pod-{i}"))).collect();
        // All create at once.
        let results = futures_join(&electors).await;
        assert_eq!(
            results.iter().filter(|l| **l).count(),
            1,
            "round {round}: {results:?}"
        );
        // All race for an expired lease at once.
        age_lease(&api, 60);
        let results = futures_join(&electors).await;
        assert_eq!(
            results.iter().filter(|l| **l).count(),
            1,
            "round {round}: {results:?}"
        );
        let winner = results.iter().position(|l| *l).unwrap();
        assert_eq!(holder(&api), Some(format!("pod-{winner}")));
        conflicts += api.conflicts();
    }
    assert!(conflicts > 0, "the candidates never actually collided");
}

async fn futures_join(electors: &[LeaderElector]) -> Vec<bool> {
    // join_all polls every future before awaiting any, so their GETs and writes interleave.
    futures::future::join_all(
        electors
            .iter()
            .map(|e| async move { e.try_acquire_or_renew().await.unwrap() }),
    )
    .await
}

#[tokio::test]
async fn step_down_lets_another_take_over_at_once() {
    let api = FakeApiServer::default();
    let a = elector(&api, "pod-a");
    let b = elector(&api, "pod-b");
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());
    a.step_down().await.unwrap();
    assert_eq!(holder(&api), None);
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "no wait for expiry"
    );
    assert_eq!(holder(&api).as_deref(), Some("pod-b"));
    // Stepping down when not the holder changes nothing.
    a.step_down().await.unwrap();
    assert_eq!(holder(&api).as_deref(), Some("pod-b"));
}

#[tokio::test]
async fn spawned_electors_hand_over_on_shutdown_and_on_death() {
    let api = FakeApiServer::default();
    let stop_a = CancellationToken::new();
    let (mut a_leads, a_task) = fast_elector(&api, "pod-a").spawn(stop_a.clone());
    wait_for(&mut a_leads, true).await;

    let stop_b = CancellationToken::new();
    let (mut b_leads, b_task) = fast_elector(&api, "pod-b").spawn(stop_b.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!*b_leads.borrow(), "pod-b waits while pod-a renews");

    // Graceful shutdown: pod-b leads well before the 2 s lease would have expired.
    let stopped_at = std::time::Instant::now();
    stop_a.cancel();
    a_task.await.unwrap();
    assert!(!*a_leads.borrow());
    wait_for(&mut b_leads, true).await;
    assert!(stopped_at.elapsed() < Duration::from_millis(1500));

    // pod-b dies without stepping down: pod-c takes over after the lease expires.
    b_task.abort();
    let died_at = std::time::Instant::now();
    let stop_c = CancellationToken::new();
    let (mut c_leads, c_task) = fast_elector(&api, "pod-c").spawn(stop_c.clone());
    wait_for(&mut c_leads, true).await;
    assert!(
        died_at.elapsed() >= Duration::from_secs(2),
        "not before expiry"
    );
    assert_eq!(holder(&api).as_deref(), Some("pod-c"));
    assert_eq!(spec(&api).lease_transitions, Some(2));
    stop_b.cancel();
    stop_c.cancel();
    c_task.await.unwrap();
    assert_eq!(holder(&api), None, "pod-c released it on shutdown");
}

async fn wait_for(rx: &mut tokio::sync::watch::Receiver<bool>, value: bool) {
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|v| *v == value))
        .await
        .expect("leadership did not change in time")
        .expect("elector task ended");
}
