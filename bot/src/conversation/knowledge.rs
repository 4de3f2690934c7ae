//! The knowledge side of the conversation pipeline: a document arriving, and the response
//! cache around a chat answer.

use super::{Format, Pipeline, PipelineError, Reply, Transport, commands};
use crate::leads::{Inbound, Kind};
use crate::money::{CallContext, MoneyError, RequestType};
use crate::telegram::updates::Upload;

impl Pipeline {
    /// The response-cache key of this question, when the cache is on and the question stands
    /// alone (the lead's only message in the history): a follow-up question depends on what
    /// was said before it.
    pub(crate) fn response_cache_key(
        &self,
        messages: &[botfleet_llm::ChatMessage],
        document: Option<&crate::knowledge::documents::ActiveDocument>,
    ) -> Option<String> {
        let config = self.ctx.settings.bot.llm.response_cache.as_ref()?;
        if !config.enabled {
            return None;
        }
        let [question] = messages else {
            return None;
        };
        Some(crate::knowledge::response_cache::key(
            self.ctx.llm.model(),
            &self.knowledge.version,
            document.map_or("", |d| d.sha256.as_str()),
            &question.text,
        ))
    }

    fn response_cache_ttl_ms(&self) -> i64 {
        let ttl = self
            .ctx
            .settings
            .bot
            .llm
            .response_cache
            .as_ref()
            .map_or(botfleet_api::ResponseCacheConfig::DEFAULT_TTL, |c| c.ttl());
        i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
    }

    /// A stored answer for `key`, recorded in the ledger as a zero-cost cache hit.
    pub(crate) async fn cached_answer(
        &self,
        inbound: &Inbound,
        key: &str,
        request_type: RequestType,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, PipelineError> {
        let db = &self.ctx.db;
        let ttl = self.response_cache_ttl_ms();
        let Some(answer) =
            crate::knowledge::response_cache::lookup(db, key, now.timestamp_millis(), ttl)
                .await
                .map_err(MoneyError::from)?
        else {
            return Ok(None);
        };
        let call = CallContext {
            chat_id: Some(inbound.chat_id),
            update_id: Some(inbound.update_id),
            request_type,
        };
        self.ctx.llm.cache_hit(call, now).await?;
        tracing::info!("answered from the response cache");
        Ok(Some(answer))
    }

    /// Best effort: a failed write costs a later LLM call, nothing else.
    pub(crate) async fn remember_answer(&self, key: &str, answer: &str) {
        let now = chrono::Utc::now().timestamp_millis();
        let ttl = self.response_cache_ttl_ms();
        if let Err(e) =
            crate::knowledge::response_cache::store(&self.ctx.db, key, answer, now, ttl).await
        {
            tracing::warn!(error = %e, "could not store the answer in the response cache");
        }
    }

    /// A lead sent a document: read it and make it their active document, or tell them why
    /// not. Either way the update is done (a broken file is not retried).
    pub(crate) async fn document_received<T: Transport>(
        &self,
        transport: &T,
        upload: Upload,
    ) -> Result<(), PipelineError> {
        use crate::knowledge::documents;
        let db = &self.ctx.db;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let inbound = upload.user.clone().inbound(
            upload.update_id,
            &upload.chat,
            format!("[document] {}", upload.file_name),
        );
        crate::leads::record_inbound(db, &inbound, Kind::Notice, now_ms).await?;
        if self.finish_stored_reply(transport, &inbound).await? {
            return Ok(());
        }
        let settings = &self.ctx.settings;
        let config = settings.bot.documents.clone().unwrap_or_default();
        let text = if !config.enabled() {
            commands::TEXT_ONLY.to_owned()
        } else {
            transport.typing(upload.chat.id).await;
            let read = documents::read(
                &self.ctx.telegram,
                &settings.telegram_api_url,
                settings.telegram_token.expose(),
                &config,
                &upload,
            )
            .await;
            let outcome = match &read {
                Ok(_) => "accepted",
                Err(refusal) => refusal.outcome(),
            };
            self.ctx
                .metrics
                .documents
                .get_or_create(&crate::metrics::OutcomeLabels {
                    outcome: outcome.to_owned(),
                })
                .inc();
            match read {
                Ok(accepted) => {
                    documents::store(db, upload.chat.id, &upload.file_name, &accepted, now_ms)
                        .await
                        .map_err(MoneyError::from)?;
                    tracing::info!(
                        kind = accepted.kind.as_str(),
                        pages = accepted.extracted.pages,
                        chars = accepted.text.len(),
                        cut = accepted.cut,
                        "document accepted"
                    );
                    accepted.reply(&upload.file_name)
                }
                Err(refusal) => {
                    tracing::warn!(outcome, error = %refusal, "document refused");
                    refusal.reply(&upload.file_name)
                }
            }
        };
        let reply = Reply {
            text,
            kind: Kind::Notice,
            format: Format::Plain,
            buttons: vec![],
        };
        self.store_and_send(transport, &inbound, reply, now_ms)
            .await
    }
}
