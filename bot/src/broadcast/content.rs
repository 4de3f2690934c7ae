//! What a broadcast says: the owner's message as Telegram HTML (their formatting kept), an
//! optional photo or document (by Telegram `file_id`, so nothing is uploaded again), and URL
//! buttons; and how it is sent to one chat.
//!
//! Buttons are written as the message's last lines, one per line, `[Label](https://…)`. A
//! client that turns that into a link (a line that is one `text_link`) works the same.

use serde::{Deserialize, Serialize};
use teloxide::prelude::*;
use teloxide::types::{
    FileId, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, MessageEntity,
    MessageEntityKind, ParseMode,
};
use teloxide::utils::render::Renderer;

use crate::delivery::{Delivery, Put};
use crate::telegram::{Priority, TelegramError, escape_html};

/// Telegram's longest message text and media caption, in UTF-16 code units.
pub const MAX_TEXT: usize = 4096;
pub const MAX_CAPTION: usize = 1024;
/// Telegram shows at most this many buttons comfortably; more is refused.
pub const MAX_BUTTONS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Media {
    Photo(String),
    Document(String),
}

/// A URL button under the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkButton {
    pub label: String,
    pub url: reqwest::Url,
}

/// A broadcast message as it is stored and sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// Telegram HTML (may be empty under a photo or document).
    pub text_html: String,
    pub media: Option<Media>,
    pub buttons: Vec<LinkButton>,
}

/// Why the owner's message cannot be a broadcast; said to the owner as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error(
        "a broadcast is text, a photo or a document (with a caption); this message is none of those"
    )]
    Unsupported,
    #[error("the message is empty")]
    Empty,
    #[error("the text is {0} characters with the opt-out line; Telegram takes at most {1}")]
    TooLong(usize, usize),
    #[error("at most {MAX_BUTTONS} buttons")]
    TooManyButtons,
}

impl Content {
    /// Reads the owner's message. `extra_chars`: what is appended when sent (the opt-out line),
    /// counted against Telegram's limit.
    pub fn from_message(message: &Message, extra_chars: usize) -> Result<Self, ContentError> {
        let media = if let Some(photo) = message.photo() {
            // Telegram lists the sizes smallest first; the largest is the photo.
            let largest = photo.last().ok_or(ContentError::Unsupported)?;
            Some(Media::Photo(largest.file.id.0.clone()))
        } else {
            message
                .document()
                .map(|d| Media::Document(d.file.id.0.clone()))
        };
        let (text, entities) = match (&media, message.text()) {
            (None, Some(text)) => (text, message.entities().unwrap_or(&[])),
            (None, None) => return Err(ContentError::Unsupported),
            (Some(_), _) => (
                message.caption().unwrap_or_default(),
                message.caption_entities().unwrap_or(&[]),
            ),
        };
        let (body, buttons) = split_buttons(text, entities);
        if buttons.len() > MAX_BUTTONS {
            return Err(ContentError::TooManyButtons);
        }
        let body_len: usize = body.encode_utf16().count();
        if body_len == 0 && media.is_none() {
            return Err(ContentError::Empty);
        }
        let limit = if media.is_some() {
            MAX_CAPTION
        } else {
            MAX_TEXT
        };
        if body_len + extra_chars > limit {
            return Err(ContentError::TooLong(body_len + extra_chars, limit));
        }
        let entities = clip_entities(entities, body_len);
        Ok(Self {
            text_html: Renderer::new(body, &entities).as_html(),
            media,
            buttons,
        })
    }

    /// The buttons as stored: JSON `[[label, url], ...]`.
    pub fn buttons_json(&self) -> String {
        let pairs: Vec<(&str, &str)> = self
            .buttons
            .iter()
            .map(|b| (b.label.as_str(), b.url.as_str()))
            .collect();
        serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())
    }

    pub fn buttons_from_json(json: Option<&str>) -> Vec<LinkButton> {
        let pairs: Vec<(String, String)> = json
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default();
        pairs
            .into_iter()
            .filter_map(|(label, url)| {
                Some(LinkButton {
                    label,
                    url: url.parse().ok()?,
                })
            })
            .collect()
    }

    /// The HTML a recipient sees: the text and the opt-out line under it.
    pub fn html_with(&self, opt_out_line: Option<&str>) -> String {
        match opt_out_line.map(str::trim).filter(|l| !l.is_empty()) {
            Some(line) if self.text_html.is_empty() => escape_html(line),
            Some(line) => format!("{}\n\n{}", self.text_html, escape_html(line)),
            None => self.text_html.clone(),
        }
    }
}

/// A media request with the HTML as its caption (none when empty) and the keyboard under it.
/// A photo and a document take them through setters of different request types (teloxide
/// has no trait for captioned media), hence a macro.
macro_rules! captioned {
    ($request:expr, $html:expr, $keyboard:expr) => {{
        let mut request = $request.parse_mode(ParseMode::Html);
        if !$html.is_empty() {
            request = request.caption($html);
        }
        if let Some(k) = $keyboard {
            request = request.reply_markup(k);
        }
        request
    }};
}

/// Sends `content` to one chat through the outbound limiter; returns the message Telegram
/// created. One message per chat (the composer keeps text within Telegram's limit).
pub async fn send(
    delivery: &Delivery,
    chat_id: i64,
    content: &Content,
    opt_out_line: Option<&str>,
    priority: Priority,
) -> Result<Message, TelegramError> {
    let html = content.html_with(opt_out_line);
    let keyboard = (!content.buttons.is_empty()).then(|| {
        InlineKeyboardMarkup::new(
            content
                .buttons
                .iter()
                .map(|b| [InlineKeyboardButton::url(b.label.clone(), b.url.clone())]),
        )
    });
    let bot = delivery.bot();
    let chat = ChatId(chat_id);
    delivery
        .request(chat_id, priority, Put::Message, || {
            let html = html.clone();
            let keyboard = keyboard.clone();
            async move {
                match &content.media {
                    None => {
                        let mut request = bot.send_message(chat, html).parse_mode(ParseMode::Html);
                        if let Some(k) = keyboard {
                            request = request.reply_markup(k);
                        }
                        request.await
                    }
                    Some(Media::Photo(id)) => {
                        let file = InputFile::file_id(FileId(id.clone()));
                        captioned!(bot.send_photo(chat, file), html, keyboard).await
                    }
                    Some(Media::Document(id)) => {
                        let file = InputFile::file_id(FileId(id.clone()));
                        captioned!(bot.send_document(chat, file), html, keyboard).await
                    }
                }
            }
        })
        .await
}

/// Splits trailing button lines off `text`: returns the text before them (trailing blank
/// lines dropped) and the buttons in order.
fn split_buttons<'a>(text: &'a str, entities: &[MessageEntity]) -> (&'a str, Vec<LinkButton>) {
    let mut cut = text.trim_end().len();
    let mut buttons = Vec::new();
    loop {
        let before = text[..cut].trim_end();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before[line_start..].trim();
        if line.is_empty() {
            break;
        }
        let line_offset =
            line_start + (before[line_start..].len() - before[line_start..].trim_start().len());
        let Some(button) =
            markdown_button(line).or_else(|| link_line(text, line_offset, line, entities))
        else {
            break;
        };
        buttons.push(button);
        cut = line_start;
        if line_start == 0 {
            break;
        }
    }
    buttons.reverse();
    (text[..cut].trim_end(), buttons)
}

/// `[Label](https://…)`.
fn markdown_button(line: &str) -> Option<LinkButton> {
    let rest = line.strip_prefix('[')?;
    let (label, rest) = rest.split_once("](")?;
    let url = rest.strip_suffix(')')?;
    link(label, url)
}

/// A line that is one `text_link` entity (a client rendered the markdown as a link).
fn link_line(
    text: &str,
    byte_offset: usize,
    line: &str,
    entities: &[MessageEntity],
) -> Option<LinkButton> {
    let start = text[..byte_offset].encode_utf16().count();
    let len = line.encode_utf16().count();
    entities.iter().find_map(|e| match &e.kind {
        MessageEntityKind::TextLink { url } if e.offset == start && e.length == len => {
            link(line, url.as_str())
        }
        _ => None,
    })
}

fn link(label: &str, url: &str) -> Option<LinkButton> {
    let label = label.trim();
    let url: reqwest::Url = url.trim().parse().ok()?;
    (!label.is_empty() && matches!(url.scheme(), "http" | "https")).then(|| LinkButton {
        label: label.to_owned(),
        url,
    })
}

/// The entities within the first `len` UTF-16 units, cut at that end.
fn clip_entities(entities: &[MessageEntity], len: usize) -> Vec<MessageEntity> {
    entities
        .iter()
        .filter(|e| e.offset < len)
        .map(|e| {
            let mut e = e.clone();
            e.length = e.length.min(len - e.offset);
            e
        })
        .filter(|e| e.length > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(fields: serde_json::Value) -> Message {
        let mut m = json!({"message_id": 5, "date": 1_700_000_000,
            "chat": {"id": 1, "type": "private", "first_name": "Owner"},
            "from": {"id": 1, "is_bot": false, "first_name": "Owner"}});
        for (k, v) in fields.as_object().unwrap() {
            m[k] = v.clone();
        }
        serde_json::from_value(m).unwrap()
    }

    #[test]
    fn formatting_is_kept_as_html() {
        let m = message(json!({"text": "Sale: 20% off <today>", "entities": [
            {"type": "bold", "offset": 0, "length": 4}
        ]}));
        let c = Content::from_message(&m, 0).unwrap();
        assert_eq!(c.text_html, "<b>Sale</b>: 20% off &lt;today&gt;");
        assert!(c.media.is_none() && c.buttons.is_empty());
        assert_eq!(
            c.html_with(Some("Send /stop <to stop>")),
            "<b>Sale</b>: 20% off &lt;today&gt;\n\nSend /stop &lt;to stop&gt;"
        );
    }

    #[test]
    fn trailing_link_lines_become_buttons() {
        let text = "New menu!\n\n[Order](https://example.com/order)\n[Menü](https://example.com/m)";
        let m = message(json!({"text": text, "entities": [
            {"type": "italic", "offset": 0, "length": 30}
        ]}));
        let c = Content::from_message(&m, 0).unwrap();
        assert_eq!(c.text_html, "<i>New menu!</i>");
        let labels: Vec<_> = c.buttons.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["Order", "Menü"]);
        assert_eq!(c.buttons[1].url.as_str(), "https://example.com/m");
        let back = Content::buttons_from_json(Some(&c.buttons_json()));
        assert_eq!(back, c.buttons);

        // A client that made the line a link.
        let m = message(json!({"text": "Hi\nOrder now", "entities": [
            {"type": "text_link", "offset": 3, "length": 9, "url": "https://example.com/"}
        ]}));
        let c = Content::from_message(&m, 0).unwrap();
        assert_eq!(c.text_html, "Hi");
        assert_eq!(c.buttons[0].label, "Order now");

        // A link in the text is not a button; a non-http scheme is not either.
        let m = message(json!({"text": "see [x](ftp://a.b) here\n[y](javascript:alert)"}));
        let c = Content::from_message(&m, 0).unwrap();
        assert!(c.buttons.is_empty());
    }

    #[test]
    fn photos_and_documents_go_by_file_id_with_their_caption() {
        let m = message(json!({"caption": "Look", "photo": [
            {"file_id": "small", "file_unique_id": "a", "width": 90, "height": 90},
            {"file_id": "large", "file_unique_id": "b", "width": 900, "height": 900},
        ]}));
        let c = Content::from_message(&m, 0).unwrap();
        assert_eq!(c.media, Some(Media::Photo("large".into())));
        assert_eq!(c.text_html, "Look");
        let m = message(json!({"document": {"file_id": "doc1", "file_unique_id": "d"}}));
        let c = Content::from_message(&m, 0).unwrap();
        assert_eq!(c.media, Some(Media::Document("doc1".into())));
        assert_eq!(c.html_with(Some("/stop")), "/stop");
    }

    #[test]
    fn what_telegram_would_refuse_is_refused_here() {
        let m = message(
            json!({"sticker": {"file_id": "s", "file_unique_id": "s", "width": 1,
            "height": 1, "is_animated": false, "is_video": false, "type": "regular"}}),
        );
        assert_eq!(Content::from_message(&m, 0), Err(ContentError::Unsupported));
        let m = message(json!({"text": "x".repeat(4090)}));
        assert!(Content::from_message(&m, 0).is_ok());
        assert_eq!(
            Content::from_message(&m, 10),
            Err(ContentError::TooLong(4100, MAX_TEXT))
        );
        let m = message(
            json!({"caption": "x".repeat(1025), "document": {"file_id": "d", "file_unique_id": "d"}}),
        );
        assert!(matches!(
            Content::from_message(&m, 0),
            Err(ContentError::TooLong(1025, MAX_CAPTION))
        ));
    }
}
