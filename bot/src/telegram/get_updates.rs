//! `getUpdates` through teloxide, keeping each update as the JSON Telegram sent.
//!
//! teloxide's own `GetUpdates` answers `Vec<Update>`, which drops whatever its types do not
//! model; the inbox stores the payload instead, so that an update the types cannot parse is
//! kept rather than lost. This payload is the same Bot API method with a JSON-value output,
//! sent by teloxide's `JsonRequest`: the token, the URL, `retry_after` and Telegram's error
//! descriptions are handled by teloxide as for every other call.

use std::time::Duration;

use serde::Serialize;
use teloxide::requests::Payload;

#[derive(Debug, Clone, Serialize)]
pub struct GetRawUpdates {
    /// The first update wanted: one past the last one stored.
    pub offset: i64,
    /// Long-poll seconds.
    pub timeout: u32,
    pub allowed_updates: &'static [&'static str],
}

impl Payload for GetRawUpdates {
    type Output = Vec<serde_json::Value>;

    const NAME: &'static str = "GetUpdates";

    fn timeout_hint(&self) -> Option<Duration> {
        Some(Duration::from_secs(u64::from(self.timeout)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use botfleet_api::contract::ALLOWED_UPDATES;
    use teloxide::types::AllowedUpdate;

    #[test]
    fn the_contracts_update_kinds_are_bot_api_names() {
        for kind in ALLOWED_UPDATES {
            let parsed: Result<AllowedUpdate, _> = serde_json::from_value(serde_json::json!(kind));
            assert!(parsed.is_ok(), "{kind} is not a Bot API update kind");
        }
    }

    #[test]
    fn serializes_like_the_bot_api_documents() {
        let body = serde_json::to_value(GetRawUpdates {
            offset: 8003,
            timeout: 25,
            allowed_updates: &ALLOWED_UPDATES,
        })
        .unwrap();
        assert_eq!(body["offset"], 8003);
        assert_eq!(body["timeout"], 25);
        assert_eq!(body["allowed_updates"][0], "message");
    }
}
