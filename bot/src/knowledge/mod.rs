//! What the bot answers from besides its system prompt: the owner's knowledge (`knowledge:`,
//! loaded once at start into the system prompt within `llm.knowledgeTokens`) and the document a
//! lead sent last ([`documents`]). Both go into the request as context blocks, so the prompt
//! cache holds them (see `botfleet_llm::CompletionRequest::context`).

pub mod documents;
pub mod extract;
pub mod response_cache;
pub mod sections;

use std::path::{Path, PathBuf};

use botfleet_api::{BotConfig, KnowledgeSource, LlmConfig};
use sha2::{Digest, Sha256};

use crate::metrics::{Metrics, StateLabels};
use extract::{ExtractError, FileKind};

/// Put before the knowledge in the prompt, so the model treats it as facts to answer from.
const KNOWLEDGE_HEADER: &str = "Reference information from the business you represent. \
     Answer from it; if it does not say, say you don't know rather than guess.";

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("knowledge[{index}]: reading {path}: {source}")]
    Read {
        index: usize,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("knowledge[{index}]: {source}")]
    Extract {
        index: usize,
        #[source]
        source: ExtractError,
    },
    #[error("knowledge[{index}]: give exactly one of configMapKeyRef, inline or path")]
    Source { index: usize },
}

/// The owner's knowledge as it goes into every prompt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Knowledge {
    /// The prompt block (header and the kept sections); empty when there is no knowledge.
    pub text: String,
    /// SHA-256 (hex) of `text`: its version, for the response cache.
    pub version: String,
    pub loaded_tokens: u32,
    pub cut_tokens: u32,
}

impl Knowledge {
    /// Reads every source (`knowledge_dir` holds the mounted ConfigMap keys) and fits them
    /// into `llm.knowledgeTokens`. PDFs are extracted on the blocking pool. A source that
    /// cannot be read stops the start: a bot answering without its price list is worse.
    pub async fn load(config: &BotConfig, knowledge_dir: &Path) -> Result<Self, KnowledgeError> {
        let mut texts = Vec::new();
        for (index, source) in config.knowledge.iter().enumerate() {
            texts.push(read_source(index, source, knowledge_dir).await?);
        }
        let budget = config
            .llm
            .knowledge_tokens
            .unwrap_or(LlmConfig::DEFAULT_KNOWLEDGE_TOKENS);
        Ok(Self::fit(&texts.join("\n\n"), budget))
    }

    /// The knowledge block of `text` within `budget` tokens, cut at section boundaries.
    pub fn fit(text: &str, budget: u32) -> Self {
        if text.trim().is_empty() {
            return Self::default();
        }
        let header_tokens = botfleet_llm::estimate_tokens(KNOWLEDGE_HEADER) + 1;
        let fitted = sections::fit(text, budget.saturating_sub(header_tokens));
        let text = if fitted.text.is_empty() {
            String::new()
        } else {
            format!("{KNOWLEDGE_HEADER}\n\n{}", fitted.text)
        };
        if fitted.cut_tokens > 0 {
            tracing::warn!(
                loaded_tokens = fitted.kept_tokens,
                cut_tokens = fitted.cut_tokens,
                budget,
                first_cut = fitted.first_cut.as_deref().unwrap_or_default(),
                "knowledge does not fit llm.knowledgeTokens: the sections from `first_cut` on are left out of the prompt"
            );
        }
        Self {
            version: hex::encode(Sha256::digest(text.as_bytes())),
            text,
            loaded_tokens: fitted.kept_tokens,
            cut_tokens: fitted.cut_tokens,
        }
    }

    /// `botfleet_knowledge_tokens{state="loaded|cut"}`.
    pub fn observe(&self, metrics: &Metrics) {
        for (state, tokens) in [("loaded", self.loaded_tokens), ("cut", self.cut_tokens)] {
            metrics
                .knowledge_tokens
                .get_or_create(&StateLabels {
                    state: state.to_owned(),
                })
                .set(i64::from(tokens));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

async fn read_source(
    index: usize,
    source: &KnowledgeSource,
    knowledge_dir: &Path,
) -> Result<String, KnowledgeError> {
    let path = match (&source.inline, &source.path, &source.config_map_key_ref) {
        (Some(text), None, None) => return Ok(text.clone()),
        (None, Some(path), None) => PathBuf::from(path),
        (None, None, Some(key)) => knowledge_dir.join(&key.name).join(&key.key),
        _ => return Err(KnowledgeError::Source { index }),
    };
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|source| KnowledgeError::Read {
            index,
            path: path.clone(),
            source,
        })?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    // Anything that is not a PDF is read as text (a ConfigMap key is often named `faq`).
    let kind = FileKind::detect(name, None).unwrap_or(FileKind::Text);
    let extracted = extract::extract_off_runtime(bytes, kind, std::time::Duration::from_secs(60))
        .await
        .map_err(|source| KnowledgeError::Extract { index, source })?;
    tracing::info!(source = index, path = %path.display(), kind = kind.as_str(), "knowledge source loaded");
    Ok(extracted.text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pdf_from_a_mounted_config_map_key_is_read_as_text() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("acme")).unwrap();
        std::fs::write(
            dir.path().join("acme/terms.pdf"),
            extract::tiny_pdf(&["Returns are free within 30 days"]),
        )
        .unwrap();
        let config: BotConfig = serde_yaml_ng::from_str(
            "llm: {model: m}\nknowledge:\n  - configMapKeyRef: {name: acme, key: terms.pdf}\n  - inline: \"# FAQ\\nWe ship to the EU.\"\n",
        )
        .unwrap();
        let knowledge = Knowledge::load(&config, dir.path()).await.unwrap();
        assert!(
            knowledge.text.contains("Returns are free within 30 days"),
            "{knowledge:?}"
        );
        assert!(
            knowledge.text.ends_with("# FAQ\nWe ship to the EU."),
            "{knowledge:?}"
        );
        assert_eq!(knowledge.cut_tokens, 0);

        let missing: BotConfig = serde_yaml_ng::from_str(
            "llm: {model: m}\nknowledge:\n  - configMapKeyRef: {name: acme, key: nope.md}\n",
        )
        .unwrap();
        let error = Knowledge::load(&missing, dir.path()).await.unwrap_err();
        assert!(
            error.to_string().starts_with("knowledge[0]: reading "),
            "{error}"
        );
    }

    #[test]
    fn no_knowledge_is_no_block() {
        let k = Knowledge::fit("  ", 100);
        assert!(k.is_empty());
        assert_eq!((k.loaded_tokens, k.cut_tokens), (0, 0));
    }

    #[test]
    fn the_block_has_its_header_and_a_version() {
        let k = Knowledge::fit("# Prices\nPro: $49", 1000);
        assert!(k.text.starts_with(KNOWLEDGE_HEADER));
        assert!(k.text.ends_with("# Prices\nPro: $49"));
        assert_eq!(k.cut_tokens, 0);
        assert_eq!(k.version.len(), 64);
        assert_ne!(
            k.version,
            Knowledge::fit("# Prices\nPro: $59", 1000).version
        );
    }
}
