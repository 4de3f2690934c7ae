//! Routing a lead's message by the support desk's classification (`support.classify`): an
//! intent in `support.handoffOn` hands the lead over, `spam` gets no answer, the rest (and a
//! message that could not be classified) is answered as usual.

use botfleet_api::{HandoffTrigger, Intent};

use super::{Pipeline, PipelineError};
use crate::leads::{Inbound, Kind};

/// What the classification decided for a message.
pub(super) enum IntentRoute {
    /// Answered as usual (by the LLM).
    Answer,
    /// Told this instead of an answer (the handoff note).
    Reply((String, Kind)),
    /// No answer at all (spam).
    NoAnswer,
}

impl Pipeline {
    pub(super) async fn route_by_intent(
        &self,
        inbound: &Inbound,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<IntentRoute, PipelineError> {
        let Some(classified) = self.support.classify(&self.ctx, inbound, now).await else {
            return Ok(IntentRoute::Answer);
        };
        let intent = classified.intent;
        if self.support.hands_over_on(intent) && self.handoff.triggers_on(HandoffTrigger::Intent) {
            let reply = self
                .hand_over(inbound, HandoffTrigger::Intent, Some(intent.as_str()))
                .await?;
            return Ok(IntentRoute::Reply(reply));
        }
        if intent == Intent::Spam {
            tracing::info!("classified as spam: no answer");
            return Ok(IntentRoute::NoAnswer);
        }
        Ok(IntentRoute::Answer)
    }
}
