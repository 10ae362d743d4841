//! Splitting a long text into sentences, for picking the ones that carry it. A sentence
//! ends at `.`, `!`, `?` or a line break followed by a space or the end; abbreviations
//! may split a sentence early, which only makes a shorter candidate.

/// The most sentences looked at: a 5,000-character text has about 60.
pub const MAX_SENTENCES: usize = 80;

/// The sentences of `text` in order, trimmed, without empty ones.
pub fn split(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let ends = match c {
            '\n' => true,
            '.' | '!' | '?' => chars.peek().is_none_or(|(_, n)| n.is_whitespace()),
            _ => false,
        };
        if ends {
            let end = i + c.len_utf8();
            push(&mut out, &text[start..end]);
            start = end;
        }
    }
    push(&mut out, &text[start..]);
    out.truncate(MAX_SENTENCES);
    out
}

fn push<'a>(out: &mut Vec<&'a str>, s: &'a str) {
    let s = s.trim();
    // A sentence needs a word in it, not just "..." or a stray quote.
    if s.chars().any(char::is_alphanumeric) {
        out.push(s);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn splits_on_ends_and_lines() {
        let s = super::split("First one. Second! Third?\nA list line\n\n... 3.5 stays. Last");
        assert_eq!(
            s,
            vec![
                "First one.",
                "Second!",
                "Third?",
                "A list line",
                "3.5 stays.",
                "Last"
            ]
        );
        assert!(super::split("").is_empty());
    }
}
