//! The two wire formats: where to send, how to authenticate, the request body, the answer.

use botfleet_api::{MaxTokensField, PromptCacheTtl};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::request::{CompletionRequest, Tool, ToolCall};
use crate::usage::Usage;

/// The output limit of a request and the field that carries it (OpenAI flavour; Anthropic
/// always uses `max_tokens`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OutputLimit {
    pub tokens: u32,
    pub field: MaxTokensField,
}

/// What a successful call said: its text and the tools it called.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Answer {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
}

/// The API flavour, with everything that differs between the two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Provider {
    Anthropic,
    OpenAi,
}

const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Anthropic accepts at most four `cache_control` breakpoints per request.
pub(crate) const MAX_CACHE_BREAKPOINTS: usize = 4;

impl Provider {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::OpenAi => "openai",
        }
    }

    /// The completion endpoint under `base` (no trailing slash). An Anthropic base that
    /// already ends in `/v1` is accepted as well as the documented bare host.
    pub(crate) fn endpoint(self, base: &str) -> String {
        match self {
            Provider::Anthropic if base.ends_with("/v1") => format!("{base}/messages"),
            Provider::Anthropic => format!("{base}/v1/messages"),
            Provider::OpenAi => format!("{base}/chat/completions"),
        }
    }

    /// Headers sent with every request; the key is marked sensitive so that it is never
    /// printed by `Debug` of the header map. An empty key sends no credentials (local
    /// OpenAI-compatible servers often need none).
    pub(crate) fn headers(self, api_key: &str) -> Result<HeaderMap, &'static str> {
        let mut headers = HeaderMap::new();
        let mut secret = |name: HeaderName, value: String| -> Result<(), &'static str> {
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| "the API key contains characters not allowed in an HTTP header")?;
            value.set_sensitive(true);
            headers.insert(name, value);
            Ok(())
        };
        match self {
            Provider::Anthropic => {
                if !api_key.is_empty() {
                    secret(HeaderName::from_static("x-api-key"), api_key.to_owned())?;
                }
                headers.insert(
                    HeaderName::from_static("anthropic-version"),
                    HeaderValue::from_static(ANTHROPIC_VERSION),
                );
            }
            Provider::OpenAi => {
                if !api_key.is_empty() {
                    secret(reqwest::header::AUTHORIZATION, format!("Bearer {api_key}"))?;
                }
            }
        }
        Ok(headers)
    }

    /// The JSON request body. Messages with no text are left out: both APIs reject them.
    /// `stream` asks for server-sent events (with the usage at the end, for OpenAI).
    ///
    /// Anthropic gets prompt-cache breakpoints (at most [`MAX_CACHE_BREAKPOINTS`]): one at the
    /// end of each system block (system prompt, knowledge, a lead's document; the last three
    /// when there are more), with `cache_ttl`, and one on the conversation so far (the last
    /// message before the new one), with the default five minutes (a 1-hour entry must not
    /// follow a 5-minute one). The next call of the same conversation then reads everything
    /// up to its previous breakpoint from the cache.
    pub(crate) fn body(
        self,
        model: &str,
        request: &CompletionRequest,
        tools: &[Tool],
        limit: OutputLimit,
        stream: bool,
        cache_ttl: PromptCacheTtl,
    ) -> Value {
        let system: Vec<&str> = request.system_blocks().collect();
        let conversation: Vec<_> = request
            .messages
            .iter()
            .filter(|m| !m.text.trim().is_empty())
            .collect();
        match self {
            Provider::Anthropic => {
                let breakpoint = match cache_ttl {
                    PromptCacheTtl::FiveMinutes => json!({"type": "ephemeral"}),
                    PromptCacheTtl::OneHour => json!({"type": "ephemeral", "ttl": "1h"}),
                };
                let system_marks = system.len().min(MAX_CACHE_BREAKPOINTS - 1);
                let system_blocks: Vec<Value> = system
                    .iter()
                    .enumerate()
                    .map(|(i, text)| {
                        let mut block = json!({"type": "text", "text": text});
                        if i >= system.len() - system_marks {
                            block["cache_control"] = breakpoint.clone();
                        }
                        block
                    })
                    .collect();
                // The conversation so far: everything before the newest message.
                let marked = conversation.len().checked_sub(2);
                let messages: Vec<Value> = conversation
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        if Some(i) == marked {
                            json!({"role": m.role.as_str(), "content": [{
                                "type": "text",
                                "text": m.text,
                                "cache_control": {"type": "ephemeral"},
                            }]})
                        } else {
                            json!({"role": m.role.as_str(), "content": m.text})
                        }
                    })
                    .collect();
                let mut body = json!({
                    "model": model,
                    "max_tokens": limit.tokens,
                    "messages": messages,
                });
                if stream {
                    body["stream"] = json!(true);
                }
                if !system_blocks.is_empty() {
                    body["system"] = Value::Array(system_blocks);
                }
                if !tools.is_empty() {
                    body["tools"] = tools
                        .iter()
                        .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
                        .collect();
                }
                body
            }
            Provider::OpenAi => {
                // These APIs cache the longest prefix seen before on their own: keep the
                // stable text first and unchanged, in one system message.
                let system = (!system.is_empty()).then(|| system.join("\n\n"));
                let messages: Vec<Value> = system
                    .map(|s| json!({"role": "system", "content": s}))
                    .into_iter()
                    .chain(
                        conversation
                            .iter()
                            .map(|m| json!({"role": m.role.as_str(), "content": m.text})),
                    )
                    .collect();
                let mut body = json!({"model": model, "messages": messages});
                body[limit.field.as_str()] = json!(limit.tokens);
                if stream {
                    body["stream"] = json!(true);
                    body["stream_options"] = json!({"include_usage": true});
                }
                if !tools.is_empty() {
                    body["tools"] = tools
                        .iter()
                        .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
                        .collect();
                }
                body
            }
        }
    }

    /// The output-limit field to send: the configured one, else `max_completion_tokens` for
    /// api.openai.com (its newer models reject `max_tokens`) and `max_tokens` for other
    /// OpenAI-compatible servers, which may not know the newer name.
    pub(crate) fn max_tokens_field(
        self,
        configured: Option<MaxTokensField>,
        base: &reqwest::Url,
    ) -> MaxTokensField {
        match (self, configured) {
            (Provider::Anthropic, _) => MaxTokensField::MaxTokens,
            (Provider::OpenAi, Some(field)) => field,
            (Provider::OpenAi, None) if base.host_str() == Some("api.openai.com") => {
                MaxTokensField::MaxCompletionTokens
            }
            (Provider::OpenAi, None) => MaxTokensField::MaxTokens,
        }
    }

    /// The answer's text, tool calls and usage from a 2xx body, or why the body is not an
    /// answer.
    pub(crate) fn parse_answer(self, body: &Value) -> Result<(Answer, Usage), &'static str> {
        match self {
            Provider::Anthropic => {
                let blocks = body
                    .get("content")
                    .and_then(Value::as_array)
                    .ok_or("no `content` array")?;
                let text = blocks
                    .iter()
                    .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect::<String>();
                let tool_calls = blocks
                    .iter()
                    .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
                    .map(|b| {
                        let name = b.get("name").and_then(Value::as_str).unwrap_or_default();
                        let input = b.get("input").map(Value::to_string).unwrap_or_default();
                        ToolCall::parse(name.to_owned(), &input)
                    })
                    .collect();
                Ok((Answer { text, tool_calls }, Usage::from_anthropic(body)))
            }
            Provider::OpenAi => {
                let message = body
                    .get("choices")
                    .and_then(|c| c.get(0))
                    .and_then(|c| c.get("message"))
                    .ok_or("no `choices[0].message`")?;
                // `content` is null when the model refused or only called tools.
                let text = message
                    .get("content")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let tool_calls = message
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|call| call.get("function"))
                    .map(|function| {
                        let name = function.get("name").and_then(Value::as_str);
                        let arguments = function.get("arguments").and_then(Value::as_str);
                        ToolCall::parse(
                            name.unwrap_or_default().to_owned(),
                            arguments.unwrap_or_default(),
                        )
                    })
                    .collect();
                let answer = Answer {
                    text: text.to_owned(),
                    tool_calls,
                };
                Ok((answer, Usage::from_openai(body)))
            }
        }
    }

    /// The usage of a body, for a 2xx whose answer could not be read but was still billed.
    pub(crate) fn usage(self, body: &Value) -> Usage {
        match self {
            Provider::Anthropic => Usage::from_anthropic(body),
            Provider::OpenAi => Usage::from_openai(body),
        }
    }
}

impl From<botfleet_api::LlmProvider> for Provider {
    fn from(provider: botfleet_api::LlmProvider) -> Self {
        match provider {
            botfleet_api::LlmProvider::Anthropic => Provider::Anthropic,
            botfleet_api::LlmProvider::Openai => Provider::OpenAi,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            Provider::Anthropic.endpoint("https://api.anthropic.com"),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(
            Provider::Anthropic.endpoint("https://proxy.example/anthropic/v1"),
            "https://proxy.example/anthropic/v1/messages"
        );
        assert_eq!(
            Provider::OpenAi.endpoint("https://api.openai.com/v1"),
            "https://api.openai.com/v1/chat/completions"
        );
    }

    #[test]
    fn max_tokens_field_defaults_by_server() {
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        let openai = url("https://api.openai.com/v1");
        let local = url("http://127.0.0.1:8000/v1");
        assert_eq!(
            Provider::OpenAi.max_tokens_field(None, &openai),
            MaxTokensField::MaxCompletionTokens
        );
        assert_eq!(
            Provider::OpenAi.max_tokens_field(None, &local),
            MaxTokensField::MaxTokens
        );
        assert_eq!(
            Provider::OpenAi.max_tokens_field(Some(MaxTokensField::MaxCompletionTokens), &local),
            MaxTokensField::MaxCompletionTokens
        );
        assert_eq!(
            Provider::Anthropic
                .max_tokens_field(Some(MaxTokensField::MaxCompletionTokens), &openai),
            MaxTokensField::MaxTokens
        );
    }

    #[test]
    fn streamed_bodies() {
        let request = CompletionRequest {
            system: None,
            context: Vec::new(),
            messages: vec![crate::ChatMessage::user("hi")],
            max_output_tokens: 0,
        };
        let limit = OutputLimit {
            tokens: 50,
            field: MaxTokensField::MaxCompletionTokens,
        };
        let openai = Provider::OpenAi.body(
            "gpt-x",
            &request,
            &[],
            limit,
            true,
            PromptCacheTtl::FiveMinutes,
        );
        assert_eq!(openai["max_completion_tokens"], 50);
        assert_eq!(openai.get("max_tokens"), None);
        assert_eq!(openai["stream"], true);
        assert_eq!(openai["stream_options"], json!({"include_usage": true}));
        let plain = Provider::OpenAi.body(
            "gpt-x",
            &request,
            &[],
            limit,
            false,
            PromptCacheTtl::FiveMinutes,
        );
        assert_eq!(plain.get("stream"), None);
        let anthropic = Provider::Anthropic.body(
            "claude-x",
            &request,
            &[],
            limit,
            true,
            PromptCacheTtl::FiveMinutes,
        );
        assert_eq!(anthropic["max_tokens"], 50);
        assert_eq!(anthropic["stream"], true);
        assert_eq!(anthropic.get("stream_options"), None);
    }

    fn marks(body: &Value) -> Vec<String> {
        let mut out = Vec::new();
        for block in body["system"].as_array().into_iter().flatten() {
            if let Some(c) = block.get("cache_control") {
                out.push(format!("system:{}:{}", block["text"].as_str().unwrap(), c));
            }
        }
        for m in body["messages"].as_array().into_iter().flatten() {
            for block in m["content"].as_array().into_iter().flatten() {
                if let Some(c) = block.get("cache_control") {
                    out.push(format!("message:{}:{}", block["text"].as_str().unwrap(), c));
                }
            }
        }
        out
    }

    #[test]
    fn anthropic_breakpoints_on_the_stable_prefix_and_the_conversation_so_far() {
        let request = CompletionRequest {
            system: Some("sys".into()),
            context: vec!["knowledge".into(), "document".into()],
            messages: vec![
                crate::ChatMessage::user("q1"),
                crate::ChatMessage::assistant("a1"),
                crate::ChatMessage::user("q2"),
            ],
            max_output_tokens: 0,
        };
        let limit = OutputLimit {
            tokens: 50,
            field: MaxTokensField::MaxTokens,
        };
        let body =
            Provider::Anthropic.body("c", &request, &[], limit, false, PromptCacheTtl::OneHour);
        assert_eq!(
            marks(&body),
            [
                r#"system:sys:{"ttl":"1h","type":"ephemeral"}"#,
                r#"system:knowledge:{"ttl":"1h","type":"ephemeral"}"#,
                r#"system:document:{"ttl":"1h","type":"ephemeral"}"#,
                r#"message:a1:{"type":"ephemeral"}"#,
            ]
        );
        // The new question is sent as plain text, after the breakpoint.
        assert_eq!(body["messages"][2]["content"], "q2");

        // More system blocks than breakpoints: the last three are marked, four in all.
        let mut many = request.clone();
        many.context.insert(0, "extra".into());
        let body =
            Provider::Anthropic.body("c", &many, &[], limit, false, PromptCacheTtl::FiveMinutes);
        let marks = marks(&body);
        assert_eq!(marks.len(), MAX_CACHE_BREAKPOINTS);
        assert!(!marks.iter().any(|m| m.starts_with("system:sys:")));

        // A first message has no conversation so far to mark.
        let first = CompletionRequest {
            messages: vec![crate::ChatMessage::user("q1")],
            ..request.clone()
        };
        let body =
            Provider::Anthropic.body("c", &first, &[], limit, false, PromptCacheTtl::FiveMinutes);
        assert_eq!(body["messages"][0]["content"], "q1");
    }

    #[test]
    fn openai_gets_the_context_in_its_system_message() {
        let request = CompletionRequest {
            system: Some("sys".into()),
            context: vec!["knowledge".into()],
            messages: vec![crate::ChatMessage::user("q")],
            max_output_tokens: 0,
        };
        let limit = OutputLimit {
            tokens: 50,
            field: MaxTokensField::MaxTokens,
        };
        let body = Provider::OpenAi.body("g", &request, &[], limit, false, PromptCacheTtl::OneHour);
        assert_eq!(body["messages"][0]["content"], "sys\n\nknowledge");
        assert!(!body.to_string().contains("cache_control"));
    }

    #[test]
    fn tools_are_offered_and_calls_read_in_both_flavours() {
        let request = CompletionRequest {
            system: None,
            messages: vec![crate::ChatMessage::user("I want a person")],
            max_output_tokens: 0,
            ..CompletionRequest::default()
        };
        let tool = Tool {
            name: "handoff_to_human".into(),
            description: "hand over".into(),
            parameters: json!({"type": "object", "properties": {"reason": {"type": "string"}}}),
        };
        let limit = OutputLimit {
            tokens: 50,
            field: MaxTokensField::MaxTokens,
        };
        let body = |provider: Provider, model, tools: &[Tool]| {
            provider.body(
                model,
                &request,
                tools,
                limit,
                false,
                PromptCacheTtl::FiveMinutes,
            )
        };
        let anthropic = body(Provider::Anthropic, "c", std::slice::from_ref(&tool));
        assert_eq!(anthropic["tools"][0]["name"], "handoff_to_human");
        assert_eq!(anthropic["tools"][0]["input_schema"]["type"], "object");
        let openai = body(Provider::OpenAi, "g", std::slice::from_ref(&tool));
        assert_eq!(openai["tools"][0]["type"], "function");
        assert_eq!(openai["tools"][0]["function"]["name"], "handoff_to_human");
        assert_eq!(body(Provider::OpenAi, "g", &[]).get("tools"), None);

        let (answer, _) = Provider::Anthropic
            .parse_answer(&json!({"content": [
                {"type": "text", "text": "One moment."},
                {"type": "tool_use", "id": "t1", "name": "handoff_to_human", "input": {"reason": "wants a discount"}},
            ], "usage": {"input_tokens": 1, "output_tokens": 1}}))
            .unwrap();
        assert_eq!(answer.text, "One moment.");
        assert_eq!(answer.tool_calls[0].name, "handoff_to_human");
        assert_eq!(answer.tool_calls[0].arguments["reason"], "wants a discount");
        let (answer, _) = Provider::OpenAi
            .parse_answer(&json!({"choices": [{"message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "handoff_to_human", "arguments": "{\"reason\":\"angry\"}"}}]}}]}))
            .unwrap();
        assert_eq!(answer.text, "");
        assert_eq!(answer.tool_calls[0].arguments["reason"], "angry");
    }

    #[test]
    fn header_map_debug_hides_the_key() {
        let headers = Provider::OpenAi.headers("sk-secret-value").unwrap();
        assert!(!format!("{headers:?}").contains("sk-secret-value"));
        assert!(Provider::Anthropic.headers("bad\nkey").is_err());
    }
}
