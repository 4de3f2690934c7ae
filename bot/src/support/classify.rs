//! The classifier's one tool, `classify_message`, the request that offers it, and reading its
//! call back into a [`Classification`].

use botfleet_api::Intent;
use botfleet_llm::{ChatMessage, Completion, CompletionRequest, Tool};

pub const TOOL_NAME: &str = "classify_message";
const MAX_OUTPUT_TOKENS: u32 = 100;
/// A topic is a short label; longer ones are cut.
const MAX_TOPIC_CHARS: usize = 40;
const PROMPT: &str = "You sort the messages customers send a company's Telegram bot for its \
support team. Call classify_message exactly once for the customer's message: its intent and \
its topic. Do not answer the message.";

/// What a lead's message is: its intent and a short lowercase topic (`payment`, `delivery`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub intent: Intent,
    pub topic: String,
}

/// The one tool the classifier is offered.
pub fn tool() -> Tool {
    let intents: Vec<&str> = Intent::ALL.iter().map(|i| i.as_str()).collect();
    Tool {
        name: TOOL_NAME.into(),
        description: "Record what the customer's message is: its intent and its topic.".into(),
        parameters: serde_json::json!({
            "type": "object",
            "properties": {
                "intent": {
                    "type": "string",
                    "enum": intents,
                    "description": "question: asks something; purchase: wants to buy; complaint: unhappy; tech_support: something does not work; human: wants a person; spam: advertising or nonsense; other: anything else."
                },
                "topic": {
                    "type": "string",
                    "description": "What the message is about, one or two lowercase words, e.g. payment, delivery, login."
                }
            },
            "required": ["intent", "topic"],
        }),
    }
}

/// The classifier's request for one message.
pub fn request(text: &str) -> CompletionRequest {
    CompletionRequest {
        system: Some(PROMPT.to_owned()),
        messages: vec![ChatMessage::user(text.to_owned())],
        max_output_tokens: MAX_OUTPUT_TOKENS,
        ..CompletionRequest::default()
    }
}

/// The classification the answer's tool call gives, if it called the tool with a known intent.
pub fn read(completion: &Completion) -> Option<Classification> {
    let call = completion.tool_calls.iter().find(|c| c.name == TOOL_NAME)?;
    let intent = Intent::parse(call.arguments["intent"].as_str()?.trim())?;
    let topic = topic(call.arguments["topic"].as_str().unwrap_or_default());
    Some(Classification { intent, topic })
}

/// A topic as stored and compared: lowercase words joined by single spaces, at most
/// [`MAX_TOPIC_CHARS`]; `other` when the model gave none.
pub fn topic(raw: &str) -> String {
    let words = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let topic: String = words.to_lowercase().chars().take(MAX_TOPIC_CHARS).collect();
    let topic = topic.trim().to_owned();
    if topic.is_empty() {
        "other".to_owned()
    } else {
        topic
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use botfleet_llm::ToolCall;

    fn answered(arguments: serde_json::Value) -> Completion {
        Completion {
            tool_calls: vec![ToolCall {
                name: TOOL_NAME.into(),
                arguments,
            }],
            ..nothing()
        }
    }

    fn nothing() -> Completion {
        Completion {
            text: String::new(),
            model: "m".into(),
            usage: botfleet_llm::Usage::default(),
            used_fallback: false,
            cut: false,
            tool_calls: vec![],
        }
    }

    #[test]
    fn a_tool_call_is_read_into_intent_and_topic() {
        let got = read(&answered(
            serde_json::json!({"intent": "tech_support", "topic": "  Login   Page "}),
        ));
        assert_eq!(
            got,
            Some(Classification {
                intent: Intent::TechSupport,
                topic: "login page".into()
            })
        );
    }

    #[test]
    fn an_unknown_intent_or_no_call_is_no_classification() {
        assert_eq!(
            read(&answered(serde_json::json!({"intent": "angry"}))),
            None
        );
        assert_eq!(read(&nothing()), None);
        let got = read(&answered(serde_json::json!({"intent": "spam"}))).unwrap();
        assert_eq!(got.topic, "other");
    }

    #[test]
    fn the_tool_lists_every_intent() {
        let tool = tool();
        let listed = tool.parameters["properties"]["intent"]["enum"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(listed, Intent::ALL.len());
    }
}
