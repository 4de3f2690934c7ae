//! Where replies go: Telegram, or the terminal for `botfleet-bot chat`.

use std::future::Future;
use std::io::Write;

use crate::context::Context;
pub use crate::telegram::Format;
use crate::telegram::{Priority, TelegramError};

pub trait Transport: Send + Sync {
    fn send(
        &self,
        chat_id: i64,
        text: &str,
        format: Format,
    ) -> impl Future<Output = Result<(), TelegramError>> + Send;
    fn typing(&self, chat_id: i64) -> impl Future<Output = ()> + Send;
}

/// Replies to the person waiting in the chat: interactive priority.
pub struct TelegramTransport {
    ctx: Context,
}

impl TelegramTransport {
    pub fn new(ctx: Context) -> Self {
        Self { ctx }
    }
}

impl Transport for TelegramTransport {
    async fn send(&self, chat_id: i64, text: &str, format: Format) -> Result<(), TelegramError> {
        crate::delivery::send(&self.ctx, chat_id, text, format, Priority::Interactive).await?;
        Ok(())
    }

    async fn typing(&self, chat_id: i64) {
        self.ctx.telegram.send_typing(chat_id).await;
    }
}

/// Prints replies to stdout (HTML tags stripped) for trying prompts in a terminal.
pub struct ConsoleTransport;

impl Transport for ConsoleTransport {
    async fn send(&self, _chat_id: i64, text: &str, format: Format) -> Result<(), TelegramError> {
        let text = match format {
            Format::Plain => text.to_owned(),
            Format::Html => strip_html(text),
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "bot> {text}\n");
        let _ = out.flush();
        Ok(())
    }

    async fn typing(&self, _chat_id: i64) {}
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
