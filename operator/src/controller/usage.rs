//! Today's LLM spend of a bot, read from its `GET /api/v1/usage` (metrics port) for
//! `status.spendToday` (the "Spend Today" printer column).

use std::time::Duration;

use serde::Deserialize;

/// Where a bot's usage endpoint is: `{name}` and `{namespace}` are replaced.
pub const DEFAULT_USAGE_URL: &str = "http://{name}.{namespace}.svc:9090/api/v1/usage";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Usage {
    spend_today_usd: String,
}

pub fn usage_url(template: &str, name: &str, namespace: &str) -> String {
    template
        .replace("{name}", name)
        .replace("{namespace}", namespace)
}

/// `spendTodayUsd` of the bot, or None when it cannot be read (not ready, unreachable, a
/// NetworkPolicy): the status then keeps the last value it had.
pub async fn spend_today(http: &reqwest::Client, url: &str) -> Option<String> {
    let response = http
        .get(url)
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        tracing::debug!(status = %response.status(), "usage endpoint answered an error");
        return None;
    }
    let usage: Usage = response.json().await.ok()?;
    Some(usage.spend_today_usd)
}
