//! Lean fakes of the network edges the bot talks to, on 127.0.0.1: they answer fast and count,
//! and record nothing they are not asked to (a load generator must not become the bottleneck).

pub mod caching_llm;
pub mod llm;
pub mod telegram;

async fn serve(app: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}
