//! Drafts: `sendMessageDraft` (Bot API 9.x) streams a partial message to a private chat while
//! it is written; the draft is an ephemeral preview, the final text is still a `sendMessage`.
//!
//! teloxide 0.17 has no such method, so it is a payload of our own sent through teloxide's
//! JSON request (the token stays inside teloxide). Where drafts are not available (an older
//! self-hosted Bot API server that does not know the method, a chat that refuses drafts),
//! the bot falls back to the typing action and remembers it: for the whole bot when the
//! method is unknown, for the chat otherwise, with one warning each.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use teloxide::requests::{JsonRequest, Payload};
use teloxide::types::True;
use teloxide::{ApiError, RequestError};

/// The `sendMessageDraft` payload.
#[derive(Clone, Debug, Serialize)]
pub struct SendMessageDraft {
    pub chat_id: i64,
    /// Non-zero; one per reply, so updates of it replace the previous text.
    pub draft_id: i64,
    pub text: String,
}

impl Payload for SendMessageDraft {
    type Output = True;
    const NAME: &'static str = "sendMessageDraft";
}

/// How one draft update went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DraftShown {
    /// The lead sees it.
    Shown,
    /// Not this time (a network error, a 429): the next update may work.
    Skipped,
    /// Drafts do not work for this bot or chat: use the typing action instead.
    Unavailable,
}

/// Where drafts were found not to work. Shared by all clones of a `TelegramClient`.
#[derive(Debug, Default)]
pub(crate) struct DraftSupport {
    bot_unsupported: AtomicBool,
    chats_unsupported: Mutex<HashSet<i64>>,
}

impl DraftSupport {
    pub(crate) fn available(&self, chat_id: i64) -> bool {
        !self.bot_unsupported.load(Ordering::Relaxed)
            && !self
                .chats_unsupported
                .lock()
                .is_ok_and(|chats| chats.contains(&chat_id))
    }

    /// Reads a failed draft: remembers where drafts do not work (warning once), or says the
    /// failure was passing.
    pub(crate) fn failed(&self, chat_id: i64, error: RequestError) -> DraftShown {
        let RequestError::Api(api) = &error else {
            tracing::debug!(chat_id, error = %super::TelegramError::from(error), "draft not sent; the next one may be");
            return DraftShown::Skipped;
        };
        if method_unknown(api) {
            if !self.bot_unsupported.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %api, "the Bot API server does not know sendMessageDraft: replies show the typing action instead of drafts");
            }
        } else if let Ok(mut chats) = self.chats_unsupported.lock()
            && chats.insert(chat_id)
        {
            tracing::warn!(chat_id, error = %api, "Telegram refused a draft in this chat: its replies show the typing action instead");
        }
        DraftShown::Unavailable
    }
}

/// An older Bot API server answers an unknown method with 404 "Not Found" (which teloxide
/// reads as an invalid token: Telegram answers a wrong token the same way, but this token
/// works for every other method), or a 400 saying the method is not found.
fn method_unknown(api: &ApiError) -> bool {
    match api {
        ApiError::InvalidToken => true,
        ApiError::Unknown(description) => {
            let description = description.to_lowercase();
            description == "not found" || description.contains("method not found")
        }
        _ => false,
    }
}

pub(crate) fn request(
    bot: &teloxide::Bot,
    payload: SendMessageDraft,
) -> JsonRequest<SendMessageDraft> {
    JsonRequest::new(bot.clone(), payload)
}

/// The shared memory of a client.
pub(crate) type SharedDraftSupport = Arc<DraftSupport>;
