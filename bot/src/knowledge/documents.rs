//! Documents from leads: downloaded through the Bot API (`getFile`, then the file URL), text
//! extracted off the runtime with a time limit, kept as the lead's one active document (the
//! `lead_documents` table) until another arrives or `/forget`.

use std::time::Duration;

use botfleet_api::DocumentsConfig;
use sha2::{Digest, Sha256};
use sqlx::Row;
use teloxide::prelude::Requester;
use teloxide::types::FileId;

use super::extract::{self, ExtractError, Extracted, FileKind};
use super::sections;
use crate::db::{Db, SqlContext, SqlError};
use crate::telegram::updates::Upload;

/// The active document of a lead, as it goes into the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveDocument {
    pub file_name: String,
    pub text: String,
    /// SHA-256 (hex) of `text`.
    pub sha256: String,
}

impl ActiveDocument {
    /// The prompt block.
    pub fn prompt_block(&self) -> String {
        format!(
            "The user sent a document, \"{}\". Answer their questions about it from its text below.\n\n<document>\n{}\n</document>",
            self.file_name, self.text
        )
    }
}

/// Why a document was not taken, in words the lead reads.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("too large: {size} bytes, limit {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error("unsupported file type")]
    Unsupported,
    #[error("download failed: {0}")]
    Download(String),
    #[error(transparent)]
    Extract(#[from] ExtractError),
}

impl Refusal {
    /// The `outcome` label of `botfleet_documents_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Refusal::TooLarge { .. } => "too_large",
            Refusal::Unsupported => "unsupported",
            Refusal::Download(_) => "download_failed",
            Refusal::Extract(_) => "unreadable",
        }
    }

    /// The reply to the lead.
    pub fn reply(&self, file_name: &str) -> String {
        match self {
            Refusal::TooLarge { limit, .. } => format!(
                "Sorry, \"{file_name}\" is too large for me: I can read files up to {}. Could you send a smaller one, or just the part you have questions about?",
                megabytes(*limit)
            ),
            Refusal::Unsupported => format!(
                "Sorry, I can't read \"{file_name}\": I read PDF, TXT and Markdown files. A Word document saved as PDF works."
            ),
            Refusal::Download(_) => format!(
                "Sorry, I couldn't download \"{file_name}\" just now. Please send it again in a minute."
            ),
            Refusal::Extract(ExtractError::Encrypted) => format!(
                "Sorry, \"{file_name}\" is password-protected, so I can't read it. Please send a copy without the password."
            ),
            Refusal::Extract(ExtractError::NoText) => format!(
                "Sorry, I found no text in \"{file_name}\" (is it a scan?). Please send a version with selectable text."
            ),
            Refusal::Extract(ExtractError::TimedOut(_)) => format!(
                "Sorry, \"{file_name}\" took too long to read. Please send a shorter version."
            ),
            Refusal::Extract(ExtractError::Broken { .. }) => format!(
                "Sorry, I couldn't read \"{file_name}\": the file seems to be damaged. Please check it and send it again."
            ),
        }
    }
}

/// A document read and fitted to `documents.maxTokens`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub kind: FileKind,
    pub extracted: Extracted,
    /// The text as stored (cut to the budget at section boundaries).
    pub text: String,
    pub cut: bool,
}

impl Accepted {
    /// "Got it: <name>, 12 pages. Ask me about it."
    pub fn reply(&self, file_name: &str) -> String {
        let size = match self.extracted.pages {
            Some(1) => ", 1 page".to_owned(),
            Some(n) => format!(", {n} pages"),
            None => String::new(),
        };
        let mut reply = format!("Got it: {file_name}{size}. Ask me about it.");
        if self.cut {
            reply.push_str(" It is long, so I read its first part only.");
        }
        reply
    }
}

fn megabytes(bytes: u64) -> String {
    let tenths = (bytes * 10).div_ceil(1024 * 1024);
    if tenths.is_multiple_of(10) {
        format!("{} MB", tenths / 10)
    } else {
        format!("{}.{} MB", tenths / 10, tenths % 10)
    }
}

/// Downloads and reads `upload`: the size checked before and during the download, the type
/// before it, the text extracted off the runtime within `documents.extractTimeout`.
pub async fn read(
    telegram: &crate::telegram::TelegramClient,
    api_url: &str,
    token: &str,
    config: &DocumentsConfig,
    upload: &Upload,
) -> Result<Accepted, Refusal> {
    let limit = config.max_bytes();
    if let Some(size) = upload.file_size
        && size > limit
    {
        return Err(Refusal::TooLarge { size, limit });
    }
    let kind = FileKind::detect(&upload.file_name, upload.mime_type.as_deref())
        .ok_or(Refusal::Unsupported)?;
    let bytes = download(telegram, api_url, token, &upload.file_id, limit).await?;
    let extracted = extract::extract_off_runtime(bytes, kind, config.extract_timeout()).await?;
    let fitted = sections::fit(&extracted.text, config.max_tokens());
    let (text, cut) = if fitted.text.is_empty() {
        // One section longer than the budget: keep its beginning, on a character boundary.
        let chars = usize::try_from(config.max_tokens()).unwrap_or(usize::MAX) * 2;
        (extracted.text.chars().take(chars).collect(), true)
    } else {
        (fitted.text, fitted.cut_tokens > 0)
    };
    Ok(Accepted {
        kind,
        extracted,
        text,
        cut,
    })
}

/// `getFile`, then the file itself from `<api>/file/bot<token>/<path>`, read in chunks and
/// given up past `limit` bytes. Errors never carry the URL (it holds the token).
async fn download(
    telegram: &crate::telegram::TelegramClient,
    api_url: &str,
    token: &str,
    file_id: &str,
    limit: u64,
) -> Result<Vec<u8>, Refusal> {
    let file = telegram
        .bot()
        .get_file(FileId(file_id.to_owned()))
        .await
        .map_err(|e| Refusal::Download(format!("getFile: {}", scrub(&e.to_string(), token))))?;
    if u64::from(file.size) > limit {
        return Err(Refusal::TooLarge {
            size: u64::from(file.size),
            limit,
        });
    }
    let url = format!("{api_url}/file/bot{token}/{}", file.path);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| Refusal::Download(describe(&e)))?;
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| Refusal::Download(describe(&e)))?;
    if !response.status().is_success() {
        return Err(Refusal::Download(format!("HTTP {}", response.status())));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Refusal::Download(describe(&e)))?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > limit {
            return Err(Refusal::TooLarge {
                size: bytes.len() as u64,
                limit,
            });
        }
    }
    Ok(bytes)
}

fn describe(e: &reqwest::Error) -> String {
    crate::telegram::describe_network_error(e)
}

fn scrub(text: &str, token: &str) -> String {
    if token.is_empty() {
        text.to_owned()
    } else {
        text.replace(token, "***")
    }
}

/// Makes `accepted` the lead's active document (replacing any earlier one).
pub async fn store(
    db: &Db,
    chat_id: i64,
    file_name: &str,
    accepted: &Accepted,
    now_ms: i64,
) -> Result<(), SqlError> {
    let sha256 = hex::encode(Sha256::digest(accepted.text.as_bytes()));
    sqlx::query(
        "INSERT INTO lead_documents (chat_id, file_name, kind, pages, full_chars, cut, text, sha256, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (chat_id) DO UPDATE SET file_name = excluded.file_name, kind = excluded.kind,
           pages = excluded.pages, full_chars = excluded.full_chars, cut = excluded.cut,
           text = excluded.text, sha256 = excluded.sha256, created_at = excluded.created_at",
    )
    .bind(chat_id)
    .bind(file_name)
    .bind(accepted.kind.as_str())
    .bind(accepted.extracted.pages.map(|p| i32::try_from(p).unwrap_or(i32::MAX)))
    .bind(i64::try_from(accepted.extracted.text.chars().count()).unwrap_or(i64::MAX))
    .bind(i32::from(accepted.cut))
    .bind(accepted.text.as_str())
    .bind(sha256)
    .bind(now_ms)
    .execute(&db.pool)
    .await
    .ctx("storing a lead's document")?;
    Ok(())
}

/// The lead's active document, if any.
pub async fn active(db: &Db, chat_id: i64) -> Result<Option<ActiveDocument>, SqlError> {
    let row = sqlx::query("SELECT file_name, text, sha256 FROM lead_documents WHERE chat_id = $1")
        .bind(chat_id)
        .fetch_optional(&db.pool)
        .await
        .ctx("reading a lead's document")?;
    row.map(|row| {
        Ok(ActiveDocument {
            file_name: row.try_get("file_name")?,
            text: row.try_get("text")?,
            sha256: row.try_get("sha256")?,
        })
    })
    .transpose()
    .ctx("reading a lead's document")
}

/// Forgets the lead's active document; returns its name, `None` when there was none.
pub async fn forget(db: &Db, chat_id: i64) -> Result<Option<String>, SqlError> {
    sqlx::query_scalar("DELETE FROM lead_documents WHERE chat_id = $1 RETURNING file_name")
        .bind(chat_id)
        .fetch_optional(&db.pool)
        .await
        .ctx("forgetting a lead's document")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_name_the_file_and_its_pages() {
        let accepted = |pages, cut| Accepted {
            kind: FileKind::Pdf,
            extracted: Extracted {
                text: "x".into(),
                pages,
            },
            text: "x".into(),
            cut,
        };
        assert_eq!(
            accepted(Some(12), false).reply("offer.pdf"),
            "Got it: offer.pdf, 12 pages. Ask me about it."
        );
        assert_eq!(
            accepted(None, false).reply("notes.txt"),
            "Got it: notes.txt. Ask me about it."
        );
        assert!(
            accepted(Some(1), true)
                .reply("a.pdf")
                .contains("first part")
        );
    }

    #[test]
    fn limits_read_in_megabytes() {
        assert_eq!(megabytes(10 * 1024 * 1024), "10 MB");
        assert_eq!(megabytes(1536 * 1024), "1.5 MB");
        assert!(
            Refusal::TooLarge {
                size: 5,
                limit: 1024 * 1024
            }
            .reply("big.pdf")
            .contains("up to 1 MB")
        );
    }
}
