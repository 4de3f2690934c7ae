//! Values written as text in the resource and held parsed: a decimal amount, a duration, a time
//! of day. Each is parsed once, where YAML or JSON is read (serde `try_from`), so code further in
//! only ever sees a valid value; it serializes back as the text it was written as, so a config
//! round-trips byte for byte. The JSON schema (and so the CRD's `pattern`) is declared once per
//! type, in its [`schemars::JsonSchema`] impl.

/// Declares `pub struct $name { text: String, value: $value }` with `FromStr` (through
/// `$parse: fn(&str) -> Result<$value, $error>`), serde as a string, `Display`, and a JSON schema
/// `{"type": "string", "pattern": $pattern}` without a description (the field's doc comment is).
macro_rules! text_value {
    (
        $(#[$meta:meta])*
        pub struct $name:ident($value:ty);
        parse = $parse:path;
        error = $error:ty;
        pattern = $pattern:expr;
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name {
            text: String,
            value: $value,
        }

        impl $name {
            /// The text as it was written.
            pub fn as_str(&self) -> &str {
                &self.text
            }
        }

        impl std::str::FromStr for $name {
            type Err = $error;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Ok(Self {
                    value: $parse(text)?,
                    text: text.to_owned(),
                })
            }
        }

        impl TryFrom<String> for $name {
            type Error = $error;
            fn try_from(text: String) -> Result<Self, Self::Error> {
                Ok(Self {
                    value: $parse(&text)?,
                    text,
                })
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.text
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.text)
            }
        }

        impl schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string", "pattern": $pattern})
            }
        }
    };
}

pub(crate) use text_value;
