//! The text log format's fields: every value escaped and bounded, whatever it holds.
//!
//! Why it exists: tracing-subscriber's text format writes `%field` values as they are, so a
//! value holding a newline starts a forged log line and one holding ESC drives the reader's
//! terminal. Caller-supplied values are already passed through
//! [`fulfillment_ingress::log_safe`] where they are logged; this formatter applies the same rule
//! ([`EscapingWriter`]) to every field of every event and span in text logs, so a value logged
//! anywhere else, now or later, cannot break a line either. (The JSON format escapes by itself.)
//!
//! In: tracing fields. Out: `message name=value ...` as tracing-subscriber's default fields, with
//! control characters written as Rust escapes and each value cut after [`MAX_FIELD_CHARS`].

use fulfillment_ingress::log_safe::EscapingWriter;
use std::fmt::{self, Write};
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// Characters of one field value kept in a text log line.
pub const MAX_FIELD_CHARS: usize = 1024;

/// Formats the fields of text log lines (see the module documentation).
#[derive(Debug, Default, Clone, Copy)]
pub struct TextFields;

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = FieldWriter { writer, result: Ok(()), first: true };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes one event's or span's fields, separated by spaces.
struct FieldWriter<'writer> {
    writer: Writer<'writer>,
    result: fmt::Result,
    first: bool,
}

impl FieldWriter<'_> {
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        let name = field.name();
        // Metadata of records from the `log` crate, which the event format shows already.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let separator = if std::mem::take(&mut self.first) { "" } else { " " };
        self.result = (|| {
            self.writer.write_str(separator)?;
            if name != "message" {
                write!(self.writer, "{}=", name.strip_prefix("r#").unwrap_or(name))?;
            }
            let mut value_writer = EscapingWriter::new(&mut self.writer, MAX_FIELD_CHARS);
            value_writer.write_fmt(value)?;
            value_writer.finish()
        })();
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, format_args!("{value}"));
        } else {
            self.write(field, format_args!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn logged(emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .fmt_fields(TextFields)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn fields_read_as_the_default_format_does() {
        let out = logged(|| {
            let span = tracing::info_span!("webhook", publisher_id = %"contoso", n = 3);
            span.in_scope(|| tracing::warn!(reason = "bad", r#type = %"x", "webhook refused"));
        });
        assert!(out.contains("webhook{publisher_id=contoso n=3}: "), "{out}");
        assert!(out.trim_end().ends_with("webhook refused reason=\"bad\" type=x"), "{out}");
    }

    #[test]
    fn no_value_can_forge_a_line_or_reach_the_terminal() {
        let forged = "x\n2026-01-01T00:00:00Z  INFO webhook accepted\u{1b}[31m";
        let out = logged(|| {
            let span = tracing::info_span!("webhook", webhook_id = %forged);
            span.in_scope(|| tracing::warn!(publisher_id = %forged, "refused {}", forged));
        });
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains('\u{1b}'), "{out}");
        assert_eq!(out.matches("x\\n2026-01-01T00:00:00Z  INFO webhook accepted\\u{1b}[31m").count(), 3, "{out}");
    }

    #[test]
    fn long_values_are_cut() {
        let long = "a".repeat(60_000);
        let out = logged(|| tracing::warn!(publisher_id = %long, "webhook refused"));
        assert!(out.len() < 2 * MAX_FIELD_CHARS, "{} bytes", out.len());
        assert!(out.contains("…(cut, "), "{out}");
    }
}
