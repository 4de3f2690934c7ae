//! Text out of a file: PDF (with `pdf-extract`), plain text and Markdown. Blocking work: the
//! callers run it on the blocking pool ([`extract_off_runtime`]) with a time limit.

use std::time::Duration;

/// What kind of file a name or MIME type stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Pdf,
    /// Plain text or Markdown, UTF-8.
    Text,
}

impl FileKind {
    /// By MIME type first (Telegram sends the client's), then by the name's extension.
    /// `None` for anything else (Word, images, archives…).
    pub fn detect(file_name: &str, mime_type: Option<&str>) -> Option<FileKind> {
        match mime_type.unwrap_or_default() {
            "application/pdf" => return Some(FileKind::Pdf),
            "text/plain" | "text/markdown" | "text/x-markdown" => return Some(FileKind::Text),
            _ => {}
        }
        let extension = file_name.rsplit_once('.')?.1.to_ascii_lowercase();
        match extension.as_str() {
            "pdf" => Some(FileKind::Pdf),
            "txt" | "md" | "markdown" | "text" => Some(FileKind::Text),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Pdf => "pdf",
            FileKind::Text => "text",
        }
    }
}

/// A file's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extracted {
    pub text: String,
    /// Pages of a PDF; `None` for text.
    pub pages: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("the PDF is encrypted")]
    Encrypted,
    #[error("the file cannot be read as a {kind}: {detail}")]
    Broken { kind: &'static str, detail: String },
    #[error("the file has no text in it (a scan or an image?)")]
    NoText,
    #[error("extracting the text took longer than {0:?}")]
    TimedOut(Duration),
}

/// Extracts the text of `bytes`. Blocking and CPU-bound for PDFs.
pub fn extract(bytes: &[u8], kind: FileKind) -> Result<Extracted, ExtractError> {
    let extracted = match kind {
        FileKind::Text => {
            let text = String::from_utf8(bytes.to_vec()).map_err(|e| ExtractError::Broken {
                kind: "text file",
                detail: format!("not UTF-8 ({e})"),
            })?;
            Extracted {
                text: text.trim_start_matches('\u{feff}').to_owned(),
                pages: None,
            }
        }
        FileKind::Pdf => extract_pdf(bytes)?,
    };
    if extracted.text.trim().is_empty() {
        return Err(ExtractError::NoText);
    }
    Ok(extracted)
}

fn extract_pdf(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(ExtractError::Broken {
            kind: "PDF",
            detail: "it does not start with %PDF-".into(),
        });
    }
    // pdf-extract panics on some malformed files instead of failing: a panic is a broken file.
    let pages = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(bytes))
        .map_err(|_| ExtractError::Broken {
            kind: "PDF",
            detail: "the PDF reader gave up on its structure".into(),
        })?
        .map_err(|e| {
            let detail = e.to_string();
            if detail.to_ascii_lowercase().contains("encrypt")
                || detail.to_ascii_lowercase().contains("decrypt")
            {
                ExtractError::Encrypted
            } else {
                ExtractError::Broken {
                    kind: "PDF",
                    detail,
                }
            }
        })?;
    let count = u32::try_from(pages.len()).unwrap_or(u32::MAX);
    let text = pages
        .iter()
        .map(|page| page.trim())
        .filter(|page| !page.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    Ok(Extracted {
        text,
        pages: Some(count),
    })
}

/// [`extract`] on the blocking pool, given up after `limit` (the thread finishes its work in
/// the background, but nobody waits for it).
pub async fn extract_off_runtime(
    bytes: Vec<u8>,
    kind: FileKind,
    limit: Duration,
) -> Result<Extracted, ExtractError> {
    let work = tokio::task::spawn_blocking(move || extract(&bytes, kind));
    match tokio::time::timeout(limit, work).await {
        Err(_) => Err(ExtractError::TimedOut(limit)),
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(ExtractError::Broken {
            kind: kind.as_str(),
            detail: format!("the extraction failed: {join}"),
        }),
    }
}

/// A tiny one-page PDF with `text` on it (Helvetica, WinAnsi), for tests and benchmarks: the
/// cross-reference offsets are computed, so real PDF readers accept it.
pub fn tiny_pdf(pages: &[&str]) -> Vec<u8> {
    let mut objects: Vec<String> = Vec::new();
    let page_ids: Vec<usize> = (0..pages.len()).map(|i| 4 + 2 * i).collect();
    objects.push("<< /Type /Catalog /Pages 2 0 R >>".into());
    objects.push(format!(
        "<< /Type /Pages /Kids [{}] /Count {} >>",
        page_ids
            .iter()
            .map(|id| format!("{id} 0 R"))
            .collect::<Vec<_>>()
            .join(" "),
        pages.len()
    ));
    objects.push(
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".into(),
    );
    for (i, text) in pages.iter().enumerate() {
        let escaped = text
            .replace('\\', "\\\\")
            .replace('(', "\\(")
            .replace(')', "\\)");
        let stream = format!("BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET");
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            page_ids[i] + 1
        ));
        objects.push(format!(
            "<< /Length {} >>\nstream\n{stream}\nendstream",
            stream.len()
        ));
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_mime_type_then_extension() {
        assert_eq!(
            FileKind::detect("x.bin", Some("application/pdf")),
            Some(FileKind::Pdf)
        );
        assert_eq!(FileKind::detect("Prices.PDF", None), Some(FileKind::Pdf));
        assert_eq!(FileKind::detect("notes.md", None), Some(FileKind::Text));
        assert_eq!(
            FileKind::detect("a.txt", Some("text/plain")),
            Some(FileKind::Text)
        );
        assert_eq!(FileKind::detect("contract.docx", None), None);
        assert_eq!(FileKind::detect("noextension", None), None);
    }

    #[test]
    fn a_generated_pdf_reads_back_with_its_pages() {
        let pdf = tiny_pdf(&["Pro plan costs 49 dollars", "Shipping takes 3 days"]);
        let extracted = extract(&pdf, FileKind::Pdf).unwrap();
        assert_eq!(extracted.pages, Some(2));
        assert!(
            extracted.text.contains("Pro plan costs 49 dollars"),
            "{extracted:?}"
        );
        assert!(
            extracted.text.contains("Shipping takes 3 days"),
            "{extracted:?}"
        );
    }

    #[test]
    fn broken_files_are_errors_not_panics() {
        assert!(matches!(
            extract(b"not a pdf at all", FileKind::Pdf),
            Err(ExtractError::Broken { .. })
        ));
        let mut truncated = tiny_pdf(&["hello"]);
        truncated.truncate(60);
        assert!(extract(&truncated, FileKind::Pdf).is_err());
        assert!(matches!(
            extract(&[0xff, 0xfe, 0x00], FileKind::Text),
            Err(ExtractError::Broken { .. })
        ));
        assert_eq!(extract(b"  \n", FileKind::Text), Err(ExtractError::NoText));
    }
}
