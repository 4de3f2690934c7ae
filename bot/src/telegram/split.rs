//! Splitting a reply into Telegram-sized messages on sensible boundaries.
//!
//! Telegram counts a message's length in UTF-16 code units (max 4096). We cut at the last
//! paragraph break that fits, else a line break, else a sentence end, else a space, else
//! anywhere (never inside a character).

pub const TELEGRAM_MAX_MESSAGE_UTF16: usize = 4096;

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Splits `text` into parts of at most `limit` UTF-16 code units each, in order. Whitespace
/// at a cut is dropped; nothing else is lost.
pub fn split_message(text: &str, limit: usize) -> Vec<String> {
    assert!(limit >= 2, "a limit below 2 cannot hold a surrogate pair");
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while utf16_len(rest) > limit {
        // Byte index of the longest prefix that fits.
        let mut fit_end = 0;
        let mut units = 0;
        for (i, c) in rest.char_indices() {
            if units + c.len_utf16() > limit {
                break;
            }
            units += c.len_utf16();
            fit_end = i + c.len_utf8();
        }
        let window = &rest[..fit_end];
        let cut = best_cut(window).unwrap_or(fit_end);
        let (head, tail) = rest.split_at(cut);
        let head = head.trim_end();
        if !head.is_empty() {
            parts.push(head.to_owned());
        }
        rest = tail.trim_start();
    }
    if !rest.is_empty() {
        parts.push(rest.to_owned());
    }
    parts
}

/// The byte index to cut `window` at, preferring the strongest boundary in its second half
/// (a cut too early would make many tiny messages).
fn best_cut(window: &str) -> Option<usize> {
    let min = window.len() / 2;
    let after = |pattern: &str| {
        window
            .rmatch_indices(pattern)
            .map(|(i, m)| i + m.len())
            .find(|&i| i > min && i < window.len() + 1)
    };
    after("\n\n")
        .or_else(|| after("\n"))
        .or_else(|| after(". "))
        .or_else(|| after("! "))
        .or_else(|| after("? "))
        .or_else(|| after(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split_message("hello", 4096), vec!["hello"]);
        assert!(split_message("   ", 4096).is_empty());
    }

    #[test]
    fn long_text_splits_in_order_without_losing_words() {
        let paragraph = "word ".repeat(300); // 1500 chars
        let text = format!(
            "{p}\n\n{p}\n\n{p}\n\n{p}\n\n{p}\n\n{p}",
            p = paragraph.trim()
        );
        let parts = split_message(&text, 4096);
        assert!(parts.len() >= 3, "{}", parts.len());
        for part in &parts {
            assert!(utf16_len(part) <= 4096);
        }
        let words: Vec<&str> = text.split_whitespace().collect();
        let rejoined: Vec<String> = parts
            .iter()
            .flat_map(|p| p.split_whitespace().map(str::to_owned))
            .collect();
        assert_eq!(rejoined, words);
        // Cuts fall on paragraph boundaries when there are any.
        assert!(parts[0].ends_with("word"));
    }

    #[test]
    fn counts_utf16_and_never_cuts_inside_a_character() {
        let text = "😀".repeat(3000); // 6000 UTF-16 units, no spaces
        let parts = split_message(&text, 4096);
        assert_eq!(parts.len(), 2);
        assert_eq!(utf16_len(&parts[0]), 4096);
        assert_eq!(parts.concat(), text);
    }
}
