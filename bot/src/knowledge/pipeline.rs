//! The knowledge side of the conversation pipeline: a document arriving, and the response
//! cache around a chat answer. (`impl Pipeline` kept here so `conversation/` stays about text.)

use crate::conversation::store::{self, Inbound, Kind};
use crate::conversation::{Format, Pipeline, PipelineError, Transport, commands};
use crate::money::{CallContext, MoneyError, RequestType};

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
        self.money
            .record_response_cache_hit(db, &self.ctx.metrics, call, self.ctx.llm.model(), now)
            .await?;
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
        upload: crate::knowledge::documents::Upload,
    ) -> Result<(), PipelineError> {
        use crate::knowledge::documents;
        let db = &self.ctx.db;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let inbound = upload.user.clone().inbound(
            upload.update_id,
            &upload.chat,
            format!("[document] {}", upload.file_name),
        );
        store::record_inbound(db, &inbound, Kind::Notice, now_ms).await?;
        if let Some(reply) = store::reply_for_update(db, upload.update_id).await? {
            if !reply.sent {
                transport
                    .send(upload.chat.id, &reply.text, Format::Plain)
                    .await?;
                self.record_sent(reply.id, upload.chat.id).await;
            }
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
        let id = store::store_reply(
            db,
            upload.chat.id,
            Some(upload.update_id),
            Kind::Notice,
            &text,
            now_ms,
        )
        .await?;
        transport.send(upload.chat.id, &text, Format::Plain).await?;
        self.record_sent(id, upload.chat.id).await;
        Ok(())
    }
}
