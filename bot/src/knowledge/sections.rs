//! Fitting text into a token budget without cutting through the middle of a thought: text is
//! split into sections (a Markdown heading starts one; blank lines end a paragraph) and whole
//! sections are kept, in order, until the next one would not fit.

use botfleet_llm::estimate_tokens;

/// The result of fitting text into a budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fitted {
    pub text: String,
    /// Estimated tokens kept.
    pub kept_tokens: u32,
    /// Estimated tokens left out (0 when everything fit).
    pub cut_tokens: u32,
    /// The first line of the first section left out, to name it in the warning.
    pub first_cut: Option<String>,
}

/// The sections of `text`: paragraphs separated by blank lines, and a new section at every
/// Markdown heading line (`#`…) even without a blank line before it.
pub fn sections(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let heading = line.trim_start().starts_with('#');
        if line.trim().is_empty() || heading {
            if !current.trim().is_empty() {
                out.push(std::mem::take(&mut current));
            }
            current.clear();
            if !heading {
                continue;
            }
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(line);
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// Keeps whole sections of `text` in order while their estimated tokens fit `budget`.
pub fn fit(text: &str, budget: u32) -> Fitted {
    let mut kept: Vec<String> = Vec::new();
    let mut kept_tokens: u32 = 0;
    let mut cut_tokens: u32 = 0;
    let mut first_cut = None;
    // Separators between kept sections count too.
    for section in sections(text) {
        let cost = estimate_tokens(&section) + 1;
        if first_cut.is_none() && kept_tokens.saturating_add(cost) <= budget {
            kept_tokens += cost;
            kept.push(section);
        } else {
            if first_cut.is_none() {
                first_cut = Some(
                    section
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .take(80)
                        .collect(),
                );
            }
            cut_tokens = cut_tokens.saturating_add(cost);
        }
    }
    Fitted {
        text: kept.join("\n\n"),
        kept_tokens,
        cut_tokens,
        first_cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_and_blank_lines_make_sections() {
        let text = "# Prices\nPro: $49\nTeam: $99\n## Shipping\nEU: 3 days\n\nUS: 5 days\n";
        assert_eq!(
            sections(text),
            [
                "# Prices\nPro: $49\nTeam: $99",
                "## Shipping\nEU: 3 days",
                "US: 5 days"
            ]
        );
    }

    #[test]
    fn whole_sections_are_kept_until_one_does_not_fit() {
        let words = vec!["word"; 40].join(" ");
        let a = format!("# A\n{words}"); // ~51 tokens
        let b = format!("# B\n{words}");
        let c = "# C\nshort";
        let text = format!("{a}\n{b}\n{c}");
        let all = fit(&text, 10_000);
        assert_eq!(all.cut_tokens, 0);
        assert_eq!(all.first_cut, None);
        assert_eq!(all.text, format!("{a}\n\n{b}\n\n{c}"));

        let one = fit(&text, 80);
        assert_eq!(one.text, a);
        assert!(one.kept_tokens <= 80);
        assert_eq!(one.first_cut.as_deref(), Some("# B"));
        // C would fit, but keeping it would skip B: order is kept, the rest is cut.
        assert!(!one.text.contains("# C"));
        assert_eq!(one.kept_tokens + one.cut_tokens, all.kept_tokens);
    }
}
