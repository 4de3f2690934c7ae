//! Where replies go: Telegram, or the terminal for `botfleet-bot chat`.

use std::future::Future;
use std::io::Write;
use std::sync::Arc;

use crate::metrics::Metrics;
use crate::telegram::{TelegramClient, TelegramError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Plain,
    /// Telegram HTML; user-provided parts are escaped by whoever built the text.
    Html,
}

pub trait Transport: Send + Sync {
    fn send(
        &self,
        chat_id: i64,
        text: &str,
        format: Format,
    ) -> impl Future<Output = Result<(), TelegramError>> + Send;
    fn typing(&self, chat_id: i64) -> impl Future<Output = ()> + Send;
}

pub struct TelegramTransport {
    telegram: TelegramClient,
    metrics: Arc<Metrics>,
}

impl TelegramTransport {
    pub fn new(telegram: TelegramClient, metrics: Arc<Metrics>) -> Self {
        Self { telegram, metrics }
    }
}

impl Transport for TelegramTransport {
    async fn send(&self, chat_id: i64, text: &str, format: Format) -> Result<(), TelegramError> {
        let sent = match format {
            Format::Plain => self.telegram.send_text(chat_id, text).await?,
            Format::Html => self.telegram.send_html(chat_id, text).await?,
        };
        self.metrics.messages_sent.inc_by(sent as u64);
        Ok(())
    }

    async fn typing(&self, chat_id: i64) {
        self.telegram.send_typing(chat_id).await;
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
