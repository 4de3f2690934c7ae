//! An in-memory stand-in for the Kubernetes API server's Lease endpoints, for tests: GET,
//! POST (409 AlreadyExists when present) and PUT with optimistic concurrency (409 Conflict when
//! `metadata.resourceVersion` is stale). It is given to `kube::Client::new` as its transport.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use k8s_openapi::api::coordination::v1::Lease;
use serde_json::json;

const PREFIX: &str = "/apis/coordination.k8s.io/v1/namespaces/";

#[derive(Default)]
struct State {
    /// (namespace, name) → Lease as stored, with its resourceVersion.
    leases: BTreeMap<(String, String), Lease>,
    next_version: u64,
    conflicts: u64,
}

/// The fake server; clones share the same store.
#[derive(Clone, Default)]
pub struct FakeApiServer {
    state: Arc<Mutex<State>>,
}

impl FakeApiServer {
    pub fn client(&self) -> kube::Client {
        let me = self.clone();
        let service = tower::service_fn(move |req: Request<kube::client::Body>| {
            let me = me.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect_bytes().await.unwrap_or_default();
                Ok::<_, Infallible>(me.handle(&parts.method, parts.uri.path(), &body))
            }
        });
        kube::Client::new(service, "default")
    }

    /// The stored Lease, as the API server would return it.
    pub fn lease(&self, namespace: &str, name: &str) -> Option<Lease> {
        let state = self.state.lock().unwrap();
        state
            .leases
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Changes the stored Lease directly (another writer), bumping its resourceVersion.
    pub fn edit(&self, namespace: &str, name: &str, f: impl FnOnce(&mut Lease)) {
        let mut state = self.state.lock().unwrap();
        state.next_version += 1;
        let version = state.next_version.to_string();
        let lease = state
            .leases
            .get_mut(&(namespace.to_owned(), name.to_owned()))
            .expect("lease to edit exists");
        f(lease);
        lease.metadata.resource_version = Some(version);
    }

    /// Stores a Lease as if some other client had created it.
    pub fn insert(&self, mut lease: Lease) {
        let mut state = self.state.lock().unwrap();
        state.next_version += 1;
        lease.metadata.resource_version = Some(state.next_version.to_string());
        let key = (
            lease.metadata.namespace.clone().unwrap(),
            lease.metadata.name.clone().unwrap(),
        );
        state.leases.insert(key, lease);
    }

    /// How many writes were refused with 409.
    pub fn conflicts(&self) -> u64 {
        self.state.lock().unwrap().conflicts
    }

    fn handle(&self, method: &Method, path: &str, body: &[u8]) -> Response<Full<Bytes>> {
        let Some(rest) = path.strip_prefix(PREFIX) else {
            return status(StatusCode::NOT_FOUND, "NotFound", "no such API");
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let mut state = self.state.lock().unwrap();
        match (method, segments.as_slice()) {
            (&Method::GET, [ns, "leases", name]) => {
                match state.leases.get(&(ns.to_string(), name.to_string())) {
                    Some(lease) => ok(StatusCode::OK, lease),
                    None => status(StatusCode::NOT_FOUND, "NotFound", "lease not found"),
                }
            }
            (&Method::POST, [ns, "leases"]) => {
                let mut lease: Lease = serde_json::from_slice(body).expect("a Lease body");
                let key = (ns.to_string(), lease.metadata.name.clone().unwrap());
                if state.leases.contains_key(&key) {
                    state.conflicts += 1;
                    return status(StatusCode::CONFLICT, "AlreadyExists", "lease exists");
                }
                state.next_version += 1;
                lease.metadata.resource_version = Some(state.next_version.to_string());
                state.leases.insert(key, lease.clone());
                ok(StatusCode::CREATED, &lease)
            }
            (&Method::PUT, [ns, "leases", name]) => {
                let mut lease: Lease = serde_json::from_slice(body).expect("a Lease body");
                let key = (ns.to_string(), name.to_string());
                let Some(stored) = state.leases.get(&key) else {
                    return status(StatusCode::NOT_FOUND, "NotFound", "lease not found");
                };
                if lease.metadata.resource_version != stored.metadata.resource_version {
                    state.conflicts += 1;
                    return status(
                        StatusCode::CONFLICT,
                        "Conflict",
                        "the object has been modified; please apply your changes to the latest version and try again",
                    );
                }
                state.next_version += 1;
                lease.metadata.resource_version = Some(state.next_version.to_string());
                state.leases.insert(key, lease.clone());
                ok(StatusCode::OK, &lease)
            }
            _ => status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "unsupported",
            ),
        }
    }
}

fn ok(code: StatusCode, lease: &Lease) -> Response<Full<Bytes>> {
    let mut value = serde_json::to_value(lease).unwrap();
    value["apiVersion"] = json!("coordination.k8s.io/v1");
    value["kind"] = json!("Lease");
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .unwrap()
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}
