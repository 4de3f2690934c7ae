//! Streamed answers: server-sent events of both providers read into text deltas and the same
//! [`Usage`] a plain response gives.
//!
//! - Anthropic Messages (`stream: true`): `message_start` carries the input and cache usage,
//!   `content_block_delta` (`text_delta`) the text, `message_delta` the final, cumulative usage
//!   (output tokens; newer API versions repeat the input counts), `message_stop` the end;
//!   `ping` is ignored and `error` ends the stream with an error.
//! - OpenAI-compatible (`stream: true`, `stream_options.include_usage`): chunks with
//!   `choices[0].delta.content`, then one chunk with `usage` and no choices, then `[DONE]`.
//!
//! Everything here is pure: bytes in, events and a final reading out.

use serde_json::{Map, Value};

use crate::classify::{ErrorResponse, classify};
use crate::provider::{Answer, Provider};
use crate::request::{CompletionRequest, ToolCall, estimate_tokens};
use crate::usage::Usage;

/// What the caller of [`crate::LlmClient::stream`] is told while the answer is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEvent<'a> {
    /// More text of the answer, to append to what came before.
    Text(&'a str),
    /// The stream broke off and the call starts over (a retry or the fallback model): the
    /// text received so far is void.
    Restart,
}

/// One server-sent event: its `event:` name (empty when none) and its joined `data:` lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Splits a byte stream into server-sent events. Chunks may end anywhere, even inside a
/// UTF-8 character; lines end in `\n` or `\r\n`.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    line: Vec<u8>,
    pending: SseEvent,
    has_data: bool,
}

impl SseDecoder {
    /// Feeds a chunk; complete events are appended to `out`.
    pub(crate) fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            self.line.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.line_done(&String::from_utf8_lossy(&line), out);
        }
        self.line.extend_from_slice(rest);
    }

    fn line_done(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                out.push(std::mem::take(&mut self.pending));
            }
            self.pending = SseEvent::default();
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return; // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.pending.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(value);
                self.has_data = true;
            }
            _ => {} // id, retry: not used by either API
        }
    }
}

/// What one event meant.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Text to append.
    Text(String),
    /// Nothing the caller needs (usage, pings, block boundaries).
    Nothing,
    /// The stream reported an error; it is over.
    Error(ErrorResponse),
}

/// How far a stream got, read event by event.
#[derive(Debug)]
pub(crate) struct StreamReader {
    provider: Provider,
    /// The usage object as reported so far (Anthropic: `message_start` overlaid with
    /// `message_delta`; OpenAI: the usage chunk).
    usage: Map<String, Value>,
    text: String,
    /// Tool calls being streamed: the block (Anthropic) or call (OpenAI) index, the name and
    /// the argument JSON so far.
    tools: Vec<(i64, String, String)>,
    /// The event that carries the final usage arrived.
    final_usage: bool,
    /// The provider's end marker (`message_stop`, `[DONE]`) arrived.
    ended: bool,
}

impl StreamReader {
    pub(crate) fn new(provider: Provider) -> Self {
        StreamReader {
            provider,
            usage: Map::new(),
            text: String::new(),
            tools: Vec::new(),
            final_usage: false,
            ended: false,
        }
    }

    /// The text so far.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn into_text(self) -> String {
        self.text
    }

    /// The text and the tool calls of a whole answer.
    pub(crate) fn into_answer(self) -> Answer {
        let tool_calls = self
            .tools
            .into_iter()
            .map(|(_, name, arguments)| ToolCall::parse(name, &arguments))
            .collect();
        Answer {
            text: self.text,
            tool_calls,
        }
    }

    /// The tool call streamed at `index`, started if new.
    fn tool_at(&mut self, index: i64) -> &mut (i64, String, String) {
        let at = match self.tools.iter().position(|t| t.0 == index) {
            Some(at) => at,
            None => {
                self.tools.push((index, String::new(), String::new()));
                self.tools.len() - 1
            }
        };
        &mut self.tools[at]
    }

    /// The answer is whole: the end marker arrived, or at least the final usage did (a
    /// server that closes the connection right after it lost nothing of the answer).
    pub(crate) fn is_complete(&self) -> bool {
        self.ended || self.final_usage
    }

    /// Whether the end marker arrived (nothing more will be read).
    pub(crate) fn ended(&self) -> bool {
        self.ended
    }

    pub(crate) fn read(&mut self, event: &SseEvent) -> Step {
        let step = match self.provider {
            Provider::Anthropic => self.read_anthropic(event),
            Provider::OpenAi => self.read_openai(event),
        };
        if let Step::Text(text) = &step {
            self.text.push_str(text);
        }
        step
    }

    fn read_anthropic(&mut self, event: &SseEvent) -> Step {
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
            return Step::Nothing;
        };
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(event.event.as_str());
        match kind {
            "message_start" => {
                if let Some(usage) = data.pointer("/message/usage") {
                    self.overlay_usage(usage);
                }
                Step::Nothing
            }
            "content_block_start"
                if data.pointer("/content_block/type").and_then(Value::as_str)
                    == Some("tool_use") =>
            {
                let index = data.get("index").and_then(Value::as_i64).unwrap_or(-1);
                let name = data
                    .pointer("/content_block/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                self.tool_at(index).1 = name;
                Step::Nothing
            }
            "content_block_delta"
                if data.pointer("/delta/type").and_then(Value::as_str)
                    == Some("input_json_delta") =>
            {
                let index = data.get("index").and_then(Value::as_i64).unwrap_or(-1);
                let part = data.pointer("/delta/partial_json").and_then(Value::as_str);
                self.tool_at(index).2.push_str(part.unwrap_or_default());
                Step::Nothing
            }
            "content_block_delta" => match data.pointer("/delta/text").and_then(Value::as_str) {
                Some(text)
                    if data.pointer("/delta/type").and_then(Value::as_str)
                        == Some("text_delta") =>
                {
                    Step::Text(text.to_owned())
                }
                _ => Step::Nothing,
            },
            "message_delta" => {
                if let Some(usage) = data.get("usage") {
                    self.overlay_usage(usage);
                    self.final_usage = true;
                }
                Step::Nothing
            }
            "message_stop" => {
                self.ended = true;
                Step::Nothing
            }
            "error" => Step::Error(stream_error(&data)),
            _ => Step::Nothing, // ping, content_block_start/stop, future event types
        }
    }

    fn read_openai(&mut self, event: &SseEvent) -> Step {
        if event.data.trim() == "[DONE]" {
            self.ended = true;
            return Step::Nothing;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(&event.data) else {
            return Step::Nothing;
        };
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            return Step::Error(stream_error(&chunk));
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage.clear();
            self.overlay_usage(usage);
            self.final_usage = true;
        }
        let calls = chunk.pointer("/choices/0/delta/tool_calls");
        for call in calls.and_then(Value::as_array).into_iter().flatten() {
            let index = call.get("index").and_then(Value::as_i64).unwrap_or(0);
            let name = call.pointer("/function/name").and_then(Value::as_str);
            let arguments = call.pointer("/function/arguments").and_then(Value::as_str);
            let tool = self.tool_at(index);
            if let Some(name) = name {
                tool.1.push_str(name);
            }
            tool.2.push_str(arguments.unwrap_or_default());
        }
        match chunk
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
        {
            Some(text) if !text.is_empty() => Step::Text(text.to_owned()),
            _ => Step::Nothing,
        }
    }

    /// Later usage fields replace earlier ones (Anthropic's `message_delta` counts are
    /// cumulative); a null or absent field keeps what came before.
    fn overlay_usage(&mut self, usage: &Value) {
        if let Some(fields) = usage.as_object() {
            for (key, value) in fields {
                if !value.is_null() {
                    self.usage.insert(key.clone(), value.clone());
                }
            }
        }
    }

    /// The usage as the stream reported it.
    pub(crate) fn usage(&self) -> Usage {
        let usage = Value::Object(self.usage.clone());
        match self.provider {
            Provider::Anthropic => Usage::from_anthropic(&usage),
            Provider::OpenAi => Usage::from_openai(&usage),
        }
    }

    /// The usage of a stream that broke off before its final usage: what it reported, with
    /// what it could not report yet estimated on the high side, so a cut never looks free
    /// (the provider bills the prompt and the tokens it wrote). Output tokens are at least an
    /// estimate of the text that arrived; input tokens, when none were reported (OpenAI
    /// reports usage only at the end), an estimate of the request.
    pub(crate) fn usage_of_cut(&self, request: &CompletionRequest) -> Usage {
        let mut usage = self.usage();
        if self.final_usage {
            return usage;
        }
        usage.output_tokens = usage
            .output_tokens
            .max(u64::from(estimate_tokens(&self.text)));
        if usage.total_input_tokens() == 0 {
            let prompt = request
                .system_blocks()
                .chain(request.messages.iter().map(|m| m.text.as_str()))
                .map(|text| u64::from(estimate_tokens(text)))
                .sum();
            usage.input_tokens = prompt;
        }
        usage
    }
}

/// An `error` event (Anthropic) or error chunk (OpenAI), read like an error response of the
/// status its type stands for (Anthropic documents one status per error type).
fn stream_error(data: &Value) -> ErrorResponse {
    let error = data.get("error");
    let text = |key: &str| error.and_then(|e| e.get(key)).and_then(Value::as_str);
    let kind = text("code").or(text("type")).unwrap_or_default();
    let status = match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "timeout_error" => 408,
        "overloaded_error" => 529,
        "insufficient_quota" => 429,
        kind if kind.contains("rate_limit") => 429,
        _ => 500, // api_error, server_error and anything unknown: the server's side
    };
    classify(status, data.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;

    fn events(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.push(chunk, &mut out);
        }
        out
    }

    #[test]
    fn events_split_anywhere_even_inside_a_character() {
        let whole = "event: a\ndata: {\"t\":\"Grüße\"}\n\n: keep-alive\n\nevent: b\r\ndata: x\r\ndata: y\r\n\r\n";
        let bytes = whole.as_bytes();
        let expected = vec![
            SseEvent {
                event: "a".into(),
                data: "{\"t\":\"Grüße\"}".into(),
            },
            SseEvent {
                event: "b".into(),
                data: "x\ny".into(),
            },
        ];
        assert_eq!(events(&[bytes]), expected);
        for cut in 1..bytes.len() {
            let (head, tail) = bytes.split_at(cut);
            assert_eq!(events(&[head, tail]), expected, "cut at {cut}");
        }
        // An event without its blank line is not dispatched.
        assert!(events(&[b"data: half"]).is_empty());
    }

    fn read_all(provider: Provider, events: &[(&str, &str)]) -> (StreamReader, Vec<Step>) {
        let mut reader = StreamReader::new(provider);
        let steps = events
            .iter()
            .map(|(event, data)| {
                reader.read(&SseEvent {
                    event: (*event).into(),
                    data: (*data).into(),
                })
            })
            .collect();
        (reader, steps)
    }

    #[test]
    fn anthropic_usage_is_message_start_overlaid_by_the_cumulative_message_delta() {
        let (reader, _) = read_all(
            Provider::Anthropic,
            &[
                (
                    "message_start",
                    r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-x","stop_reason":null,"usage":{"input_tokens":57,"cache_creation_input_tokens":100,"cache_read_input_tokens":2188,"cache_creation":{"ephemeral_5m_input_tokens":60,"ephemeral_1h_input_tokens":40},"output_tokens":1}}}"#,
                ),
                ("ping", r#"{"type":"ping"}"#),
                (
                    "content_block_start",
                    r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
                ),
                (
                    "content_block_delta",
                    r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
                ),
                (
                    "content_block_delta",
                    r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" there"}}"#,
                ),
                (
                    "content_block_stop",
                    r#"{"type":"content_block_stop","index":0}"#,
                ),
                (
                    "message_delta",
                    r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":24}}"#,
                ),
                ("message_stop", r#"{"type":"message_stop"}"#),
            ],
        );
        assert_eq!(reader.text(), "Hello there");
        assert!(reader.ended() && reader.is_complete());
        assert_eq!(
            reader.usage(),
            Usage {
                input_tokens: 57,
                cache_read_tokens: 2188,
                cache_write_5m_tokens: 60,
                cache_write_1h_tokens: 40,
                output_tokens: 24,
            }
        );
    }

    #[test]
    fn anthropic_error_event_is_classified_like_its_status() {
        let (_, steps) = read_all(
            Provider::Anthropic,
            &[(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            )],
        );
        let Step::Error(error) = &steps[0] else {
            panic!("{steps:?}")
        };
        assert_eq!(error.outcome, Outcome::Overloaded);
        assert_eq!(error.message, "Overloaded");
    }

    #[test]
    fn openai_text_then_usage_chunk_then_done() {
        let (reader, steps) = read_all(
            Provider::OpenAi,
            &[
                (
                    "",
                    r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#,
                ),
                (
                    "",
                    r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}"#,
                ),
                (
                    "",
                    r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
                ),
                (
                    "",
                    r#"{"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1200,"completion_tokens":9,"total_tokens":1209,"prompt_tokens_details":{"cached_tokens":1024}}}"#,
                ),
                ("", "[DONE]"),
            ],
        );
        assert_eq!(steps[1], Step::Text("Hi".into()));
        assert_eq!(reader.text(), "Hi");
        assert!(reader.ended());
        assert_eq!(
            reader.usage(),
            Usage {
                input_tokens: 176,
                cache_read_tokens: 1024,
                output_tokens: 9,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn streamed_tool_calls_are_read_in_both_flavours() {
        let (reader, _) = read_all(
            Provider::Anthropic,
            &[
                (
                    "content_block_start",
                    r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
                ),
                (
                    "content_block_delta",
                    r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Sure."}}"#,
                ),
                (
                    "content_block_start",
                    r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"handoff_to_human","input":{}}}"#,
                ),
                (
                    "content_block_delta",
                    r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"reason\": \"wa"}}"#,
                ),
                (
                    "content_block_delta",
                    r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"nts a call\"}"}}"#,
                ),
                ("message_stop", r#"{"type":"message_stop"}"#),
            ],
        );
        let answer = reader.into_answer();
        assert_eq!(answer.text, "Sure.");
        assert_eq!(answer.tool_calls.len(), 1);
        assert_eq!(answer.tool_calls[0].name, "handoff_to_human");
        assert_eq!(answer.tool_calls[0].arguments["reason"], "wants a call");

        let (reader, _) = read_all(
            Provider::OpenAi,
            &[
                (
                    "",
                    r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"handoff_to_human","arguments":""}}]}}]}"#,
                ),
                (
                    "",
                    r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"reason\":"}}]}}]}"#,
                ),
                (
                    "",
                    r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"angry\"}"}}]}}]}"#,
                ),
                ("", "[DONE]"),
            ],
        );
        let answer = reader.into_answer();
        assert_eq!(answer.text, "");
        assert_eq!(answer.tool_calls[0].name, "handoff_to_human");
        assert_eq!(answer.tool_calls[0].arguments["reason"], "angry");
    }

    #[test]
    fn a_cut_stream_is_never_free() {
        let request = CompletionRequest {
            system: Some("You are a helpful assistant.".into()),
            context: Vec::new(),
            messages: vec![crate::ChatMessage::user("Tell me about your prices.")],
            max_output_tokens: 0,
        };
        let (reader, _) = read_all(
            Provider::OpenAi,
            &[(
                "",
                r#"{"choices":[{"index":0,"delta":{"content":"Our prices start at"}}]}"#,
            )],
        );
        assert!(!reader.is_complete());
        let usage = reader.usage_of_cut(&request);
        assert_eq!(
            usage.output_tokens,
            u64::from(estimate_tokens("Our prices start at"))
        );
        assert_eq!(
            usage.input_tokens,
            u64::from(estimate_tokens("You are a helpful assistant."))
                + u64::from(estimate_tokens("Tell me about your prices."))
        );

        // Anthropic reported the input at the start: that is kept, only output is estimated.
        let (reader, _) = read_all(
            Provider::Anthropic,
            &[
                (
                    "message_start",
                    r#"{"type":"message_start","message":{"usage":{"input_tokens":500,"output_tokens":1}}}"#,
                ),
                (
                    "content_block_delta",
                    r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"A fairly long partial answer"}}"#,
                ),
            ],
        );
        let usage = reader.usage_of_cut(&request);
        assert_eq!(usage.input_tokens, 500);
        assert_eq!(
            usage.output_tokens,
            u64::from(estimate_tokens("A fairly long partial answer"))
        );
    }
}
