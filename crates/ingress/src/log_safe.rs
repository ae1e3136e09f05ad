//! Caller-supplied text in log lines, made harmless: control characters escaped, length bounded.
//!
//! Why it exists: a path segment is percent-decoded before a handler sees it, so
//! `/webhooks/publishers/x%0A2026-01-01T00:00:00Z%20INFO%20webhook%20accepted` hands the
//! handler an id holding a newline and a forged log line after it; `%1B[31m` is a terminal escape
//! sequence; and a 60 KB id would go whole into a log line. Text logs write `%field` values as
//! they are. So every value a caller chose goes into a log field through [`log_safe`], and the
//! binary's text log format escapes every field with [`EscapingWriter`] as well (the JSON format
//! escapes by itself, but does not bound lengths).
//!
//! In: any text. Out: the same text when it is short and has no control characters (ids of the
//! shape [`crate::directory::is_valid_id`] accepts always are), else its first
//! [`MAX_LOGGED_CHARS`] characters with controls written as Rust escapes (`\n`, `\u{1b}`) and
//! the original length in bytes.

use std::fmt::{self, Write};

/// Characters of one caller-supplied value kept in a log field.
pub const MAX_LOGGED_CHARS: usize = 256;

/// `text` for a log field: escaped and cut to [`MAX_LOGGED_CHARS`] characters.
pub fn log_safe(text: &str) -> LogSafe<'_> {
    LogSafe(text)
}

/// See [`log_safe`].
#[derive(Clone, Copy)]
pub struct LogSafe<'a>(&'a str);

impl fmt::Display for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = EscapingWriter::new(f, MAX_LOGGED_CHARS);
        out.write_str(self.0)?;
        out.finish()
    }
}

impl fmt::Debug for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Whether `c` would break a log line or reach the terminal as a command: every control
/// character (newlines, ESC, DEL, C1), the Unicode line and paragraph separators, and the
/// bidirectional overrides that reorder what a reader sees.
fn must_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A `fmt::Write` that escapes what [`must_escape`] names and writes at most about `limit`
/// characters (an escape counts its length; the last one may pass the limit by a few);
/// [`EscapingWriter::finish`] then says how many bytes of the input were left out.
pub struct EscapingWriter<W> {
    inner: W,
    limit: usize,
    written: usize,
    dropped: usize,
}

impl<W: Write> EscapingWriter<W> {
    /// Writes into `inner`, keeping at most `limit` characters.
    pub fn new(inner: W, limit: usize) -> Self {
        EscapingWriter { inner, limit, written: 0, dropped: 0 }
    }

    /// Notes the cut, if anything was cut.
    pub fn finish(mut self) -> fmt::Result {
        if self.dropped > 0 {
            write!(self.inner, "…(cut, {} more bytes)", self.dropped)?;
        }
        Ok(())
    }
}

impl<W: Write> Write for EscapingWriter<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.written >= self.limit {
            self.dropped += s.len();
            return Ok(());
        }
        // Write runs of harmless characters at once; the common case is one run.
        let mut run_start = 0;
        for (i, c) in s.char_indices() {
            if self.written >= self.limit {
                self.inner.write_str(&s[run_start..i])?;
                self.dropped += s.len() - i;
                return Ok(());
            }
            if must_escape(c) {
                self.inner.write_str(&s[run_start..i])?;
                let escaped = c.escape_default();
                self.written += escaped.len();
                write!(self.inner, "{escaped}")?;
                run_start = i + c.len_utf8();
            } else {
                self.written += 1;
            }
        }
        self.inner.write_str(&s[run_start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_ids_are_logged_as_they_are() {
        assert_eq!(log_safe("contoso").to_string(), "contoso");
        assert_eq!(log_safe("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W").to_string(), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W");
        assert_eq!(log_safe("café ünïcödé").to_string(), "café ünïcödé");
    }

    #[test]
    fn control_characters_cannot_start_a_line_or_reach_the_terminal() {
        let forged = "x\n2026-01-01T00:00:00Z  INFO webhook accepted\r\u{1b}[31mred\u{7f}\u{85}\u{2028}\u{202e}";
        let logged = log_safe(forged).to_string();
        assert!(!logged.chars().any(must_escape), "{logged}");
        assert_eq!(
            logged,
            "x\\n2026-01-01T00:00:00Z  INFO webhook accepted\\r\\u{1b}[31mred\\u{7f}\\u{85}\\u{2028}\\u{202e}"
        );
    }

    #[test]
    fn long_values_are_cut_and_say_so() {
        let id = "a".repeat(60_000);
        let logged = log_safe(&id).to_string();
        assert_eq!(logged, format!("{}…(cut, {} more bytes)", "a".repeat(MAX_LOGGED_CHARS), 60_000 - MAX_LOGGED_CHARS));
        // The cut counts characters, never splits one, and applies across several writes.
        let mut out = String::new();
        let mut w = EscapingWriter::new(&mut out, 3);
        w.write_str("é").unwrap();
        w.write_str("ü\nx").unwrap();
        w.write_str("yz").unwrap();
        w.finish().unwrap();
        assert_eq!(out, "éü\\n…(cut, 3 more bytes)");
        // Escapes count their length, so a value of control characters stays as short.
        assert!(log_safe(&"\u{1b}".repeat(10_000)).to_string().len() < MAX_LOGGED_CHARS + 64);
    }
}
