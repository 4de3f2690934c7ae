//! Where replies go: Telegram, or the terminal for `botfleet-bot chat`.

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::context::Context;
pub use crate::telegram::Format;
use crate::telegram::{DraftShown, Priority, TelegramError};

pub trait Transport: Send + Sync {
    /// Sends a message with buttons under the (last part of the) message; a button is
    /// `(label, data)` and pressing it comes back as a callback query with that data.
    fn send_with_buttons(
        &self,
        chat_id: i64,
        text: &str,
        format: Format,
        buttons: &[(String, String)],
    ) -> impl Future<Output = Result<(), TelegramError>> + Send;
    /// Sends a message without buttons.
    fn send(
        &self,
        chat_id: i64,
        text: &str,
        format: Format,
    ) -> impl Future<Output = Result<(), TelegramError>> + Send {
        self.send_with_buttons(chat_id, text, format, &[])
    }
    fn typing(&self, chat_id: i64) -> impl Future<Output = ()> + Send;
    /// Whether a streamed reply can be shown as a draft in this chat.
    fn drafts_available(&self, _chat_id: i64) -> bool {
        false
    }
    /// Shows (or replaces) the draft of a reply being written.
    fn draft(
        &self,
        _chat_id: i64,
        _draft_id: i64,
        _text: &str,
    ) -> impl Future<Output = DraftShown> + Send {
        async { DraftShown::Unavailable }
    }
    /// Stops the client's spinner on a pressed button; best effort.
    fn answer_button(&self, query_id: &str) -> impl Future<Output = ()> + Send;
}

/// Replies to the person waiting in the chat: interactive priority. Observes when the
/// first text of the update became visible.
pub struct TelegramTransport {
    ctx: Context,
    /// When the update arrived (Unix ms), for `botfleet_reply_first_text_seconds`.
    arrived_at_ms: Option<i64>,
    first_text_shown: AtomicBool,
}

impl TelegramTransport {
    pub fn new(ctx: Context) -> Self {
        Self {
            ctx,
            arrived_at_ms: None,
            first_text_shown: AtomicBool::new(false),
        }
    }

    /// The update's arrival, from which the time to the first visible text is measured.
    pub fn arrived_at(mut self, at_ms: i64) -> Self {
        self.arrived_at_ms = Some(at_ms);
        self
    }

    fn text_shown(&self) {
        if let Some(arrived) = self.arrived_at_ms
            && !self.first_text_shown.swap(true, Ordering::Relaxed)
        {
            let elapsed_ms = (chrono::Utc::now().timestamp_millis() - arrived).max(0);
            self.ctx
                .metrics
                .reply_first_text
                .observe(elapsed_ms as f64 / 1000.0);
        }
    }
}

impl Transport for TelegramTransport {
    async fn send_with_buttons(
        &self,
        chat_id: i64,
        text: &str,
        format: Format,
        buttons: &[(String, String)],
    ) -> Result<(), TelegramError> {
        self.ctx
            .delivery
            .send_with_buttons(chat_id, text, format, Priority::Interactive, buttons)
            .await?;
        self.text_shown();
        Ok(())
    }

    async fn typing(&self, chat_id: i64) {
        self.ctx.telegram.send_typing(chat_id).await;
    }

    fn drafts_available(&self, chat_id: i64) -> bool {
        self.ctx.telegram.drafts_available(chat_id)
    }

    async fn draft(&self, chat_id: i64, draft_id: i64, text: &str) -> DraftShown {
        let shown = self.ctx.telegram.send_draft(chat_id, draft_id, text).await;
        if shown == DraftShown::Shown {
            self.text_shown();
        }
        shown
    }

    async fn answer_button(&self, query_id: &str) {
        self.ctx.telegram.answer_callback_query(query_id).await;
    }
}

/// Prints replies to stdout (HTML tags stripped) for trying prompts in a terminal.
pub struct ConsoleTransport;

impl Transport for ConsoleTransport {
    async fn send_with_buttons(
        &self,
        _chat_id: i64,
        text: &str,
        format: Format,
        buttons: &[(String, String)],
    ) -> Result<(), TelegramError> {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(console_text(text, format, buttons).as_bytes());
        let _ = out.flush();
        Ok(())
    }

    async fn typing(&self, _chat_id: i64) {}

    async fn answer_button(&self, _query_id: &str) {}
}

/// A message as the terminal shows it: `bot> ` and the text (HTML tags stripped), then a blank
/// line; each button as `  [label]`, and a blank line after them.
fn console_text(text: &str, format: Format, buttons: &[(String, String)]) -> String {
    let text = match format {
        Format::Plain => text.to_owned(),
        Format::Html => strip_html(text),
    };
    let mut out = format!("bot> {text}\n\n");
    if !buttons.is_empty() {
        for (label, _) in buttons {
            out.push_str(&format!("  [{label}]\n"));
        }
        out.push('\n');
    }
    out
}

fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_shows_text_without_tags_and_buttons_by_label() {
        assert_eq!(
            console_text("<b>Price</b>: 5 &lt; 6", Format::Html, &[]),
            "bot> Price: 5 < 6\n\n"
        );
        let buttons = [
            ("What does it cost?".to_owned(), "q:0".to_owned()),
            ("Do you ship?".to_owned(), "q:1".to_owned()),
        ];
        assert_eq!(
            console_text("Hi! Ask me:", Format::Plain, &buttons),
            "bot> Hi! Ask me:\n\n  [What does it cost?]\n  [Do you ship?]\n\n"
        );
    }
}
