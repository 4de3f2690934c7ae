//! Lean fakes of the network edges the bot talks to, on 127.0.0.1: they answer fast and count,
//! and record nothing they are not asked to (a load generator must not become the bottleneck).

pub mod caching_llm;
pub mod llm;
pub mod telegram;

use std::sync::Arc;

use botfleet_operator::fixtures::Loopback;

/// A fake's state, shared with the handlers of its routes, and the routes served on loopback.
pub(crate) struct Served<S> {
    pub url: String,
    pub state: Arc<S>,
    _server: Loopback,
}

impl<S: Send + Sync + 'static> Served<S> {
    /// Serves `handler` as Anthropic's Messages API (`POST /v1/messages`), as the fake models do.
    pub(crate) async fn messages_api<H, T>(state: S, handler: H) -> Self
    where
        H: axum::handler::Handler<T, Arc<S>>,
        T: 'static,
    {
        let routes = axum::Router::new().route("/v1/messages", axum::routing::post(handler));
        Self::start(state, routes).await
    }

    pub(crate) async fn start(state: S, routes: axum::Router<Arc<S>>) -> Self {
        let state = Arc::new(state);
        let server = Loopback::serve(routes.with_state(state.clone())).await;
        Self {
            url: server.url.clone(),
            state,
            _server: server,
        }
    }
}
