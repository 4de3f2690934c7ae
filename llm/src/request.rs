//! What the caller asks for: a system prompt, a conversation and an output limit.

/// Who wrote a message of the conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The Telegram user (or an instruction written in the user's turn).
    User,
    /// The bot.
    Assistant,
}

impl Role {
    /// The role's name in both APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of the conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub text: String,
}

impl ChatMessage {
    pub fn user(text: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::User,
            text: text.into(),
        }
    }

    pub fn assistant(text: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::Assistant,
            text: text.into(),
        }
    }
}

/// One completion request. The client sends exactly this system prompt (none when `None`);
/// it does not add the configured one by itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompletionRequest {
    pub system: Option<String>,
    /// Reference text sent after the system prompt, in order (the owner's knowledge, a lead's
    /// document). It changes rarely, so for Anthropic each piece is a system block of its own
    /// that ends with a prompt-cache breakpoint (the last three pieces, within the API's four
    /// breakpoints); OpenAI-compatible APIs get it appended to the system message.
    pub context: Vec<String>,
    /// Oldest first. For Anthropic the last message should be the user's: a trailing
    /// assistant message is taken as the start of the answer (prefill).
    pub messages: Vec<ChatMessage>,
    /// Upper bound of the reply's tokens; 0 means the configured `maxOutputTokens`.
    pub max_output_tokens: u32,
}

impl CompletionRequest {
    /// The system prompt and the context, in order, without empty pieces.
    pub fn system_blocks(&self) -> impl Iterator<Item = &str> {
        self.system
            .iter()
            .chain(self.context.iter())
            .map(String::as_str)
            .filter(|s| !s.trim().is_empty())
    }
}

/// A function the model may call instead of (or beside) answering in text: sent as `tools`
/// (Anthropic `input_schema`, OpenAI `function.parameters`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tool {
    pub name: String,
    /// What the tool does and when to call it, for the model.
    pub description: String,
    /// JSON Schema of the arguments (an `object` schema).
    pub parameters: serde_json::Value,
}

/// A call of a [`Tool`] the model made: its name and its arguments (`{}` when the model sent
/// none or arguments that are not JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCall {
    pub name: String,
    pub arguments: serde_json::Value,
}

impl ToolCall {
    /// Reads streamed or stringified arguments; what is not a JSON object becomes `{}`.
    pub(crate) fn parse(name: String, arguments: &str) -> Self {
        let arguments = serde_json::from_str::<serde_json::Value>(arguments)
            .ok()
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::json!({}));
        ToolCall { name, arguments }
    }
}

/// Cheap token estimate used to fit history into a token budget; errs on the high side.
///
/// English runs at about four characters per token; other scripts (Cyrillic, CJK, emoji) use
/// far fewer characters per token, so each non-ASCII character counts as half a token.
pub fn estimate_tokens(text: &str) -> u32 {
    let (ascii, other) = text.chars().fold((0u64, 0u64), |(ascii, other), c| {
        if c.is_ascii() {
            (ascii + 1, other)
        } else {
            (ascii, other + 1)
        }
    });
    let estimate = ascii.div_ceil(4) + other.div_ceil(2);
    u32::try_from(estimate).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_is_about_four_characters_per_token_rounded_up() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        assert_eq!(estimate_tokens(&"word ".repeat(100)), 125);
    }

    #[test]
    fn non_latin_text_is_not_underestimated() {
        // "Привет, мир" — 9 Cyrillic letters, 2 ASCII characters.
        assert_eq!(estimate_tokens("Привет, мир"), 5 + 1);
        assert!(estimate_tokens("你好世界你好世界") >= 4);
    }
}
