//! Logging set-up of `regauth serve`: the `tracing` subscriber (filter from `REGAUTH_LOG`,
//! format from `[log] format`) writing to stderr through the batching [`writer`].
//!
//! Values that come from a request (a username, a `service`, a `client_id`, a path) must not
//! be able to forge a log line. The text format therefore writes every field value that holds
//! anything but printable ASCII quoted, with `"`, `\`, control characters, line and paragraph
//! separators and bidirectional controls escaped ([`SafeFields`]); the JSON format escapes by
//! construction (`serde_json`), and the characters serde_json leaves as they are (C1
//! controls, line and paragraph separators, bidirectional controls) are escaped as `\uXXXX`
//! on their way out ([`JsonEscaping`]), so a JSON line reads as it parses.
pub mod writer;

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer;

use crate::text::all_bytes;

pub use crate::config::LogFormat;

/// Logs to stderr through [`writer`] in `format`: request threads only append to a buffer,
/// a background thread writes it in batches, so a slow terminal, pipe or disk never stalls a
/// request thread: beyond 4 MB waiting, lines are dropped and counted (and the count logged).
/// `None` (and logging to stderr
/// directly) when the writer thread cannot be started.
pub fn init_tracing(format: LogFormat) -> Option<writer::FlushGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("REGAUTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a person at a terminal, not in files or journald.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let registry = tracing_subscriber::registry().with(filter);
    match writer::BatchWriter::spawn(std::io::stderr()) {
        Ok((writer, guard)) => {
            let _ = registry.with(layer(format, ansi, writer)).try_init();
            Some(guard)
        }
        Err(e) => {
            let _ = registry
                .with(layer(format, ansi, std::io::stderr))
                .try_init();
            tracing::warn!(error = %e, "cannot start the log writer thread; logging directly");
            None
        }
    }
}

/// A subscriber that writes into `sink` exactly what `serve`'s text format writes: for tests
/// of what a piece of code logs.
#[cfg(test)]
pub(crate) fn text_capture(
    sink: crate::testing::Captured,
) -> impl tracing::Subscriber + Send + Sync {
    use tracing_subscriber::layer::SubscriberExt as _;
    tracing_subscriber::registry().with(layer(LogFormat::Text, false, move || sink.clone()))
}

/// The formatting layer of `serve`'s subscriber for `format`, writing to `writer` (with colour
/// codes when `ansi`, text only). Public so that tests capture exactly what `serve` writes.
pub fn layer<S, W>(format: LogFormat, ansi: bool, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .fmt_fields(SafeFields)
            .event_format(TextLines::new())
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_timer(Timestamp)
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(JsonEscaping(writer))
            .boxed(),
    }
}

/// Each line's time: the text of `tracing_subscriber`'s default timer (RFC 3339 in UTC with
/// microseconds, `2026-06-01T12:00:00.123456Z`) for a fraction of its cost: each thread
/// formats the date and time of day once per second and writes the microseconds by hand
/// (the default formats eight padded numbers through `core::fmt` on every line, a sixth of
/// the token endpoint's log line, benches/RESULTS.md).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timestamp;

thread_local! {
    /// The second last formatted on this thread and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
}

impl Timestamp {
    /// Writes the time `secs`.`micros` after the epoch.
    fn write_at(w: &mut impl fmt::Write, secs: i64, micros: u32) -> fmt::Result {
        SECOND.with_borrow_mut(|(second, text)| {
            if *second != secs {
                text.clear();
                let Some(t) = chrono::DateTime::from_timestamp(secs, 0) else {
                    return Err(fmt::Error);
                };
                write!(text, "{}", t.format("%Y-%m-%dT%H:%M:%S"))?;
                *second = secs;
            }
            w.write_str(text)
        })?;
        let mut tail = *b".000000Z";
        let mut n = micros.min(999_999);
        for digit in tail[1..7].iter_mut().rev() {
            *digit = b'0' + (n % 10) as u8;
            n /= 10;
        }
        // ASCII digits and punctuation only.
        w.write_str(std::str::from_utf8(&tail).map_err(|_| fmt::Error)?)
    }
}

impl tracing_subscriber::fmt::time::FormatTime for Timestamp {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = std::time::SystemTime::now();
        match now.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => match i64::try_from(d.as_secs()) {
                Ok(secs) => Timestamp::write_at(w, secs, d.subsec_micros()),
                Err(_) => tracing_subscriber::fmt::time::SystemTime.format_time(w),
            },
            // A clock before 1970: the default's text.
            Err(_) => tracing_subscriber::fmt::time::SystemTime.format_time(w),
        }
    }
}

/// Wraps the JSON format's writer: every [`must_escape`] character that serde_json writes
/// raw (all of them beyond ASCII; it escapes the ASCII ones itself) becomes a JSON `\uXXXX`
/// escape. They can only stand inside strings, so the object parses to the same values.
pub struct JsonEscaping<W>(pub W);

impl<'a, W: MakeWriter<'a>> MakeWriter<'a> for JsonEscaping<W> {
    type Writer = EscapingWriter<W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter(self.0.make_writer())
    }
}

/// The writer of [`JsonEscaping`].
pub struct EscapingWriter<W>(W);

impl<W: std::io::Write> std::io::Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Only non-ASCII text can hold such a character; ASCII passes as it is.
        let text = match std::str::from_utf8(buf) {
            Ok(t) if !buf.is_ascii() && t.contains(must_escape) => t,
            _ => return self.0.write(buf),
        };
        let mut out = String::with_capacity(buf.len() + 16);
        for c in text.chars() {
            if must_escape(c) && !c.is_ascii() {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            } else {
                out.push(c);
            }
        }
        self.0.write_all(out.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The text format's lines: the text of `tracing_subscriber`'s default (`Full`) format with
/// [`Timestamp`] and [`SafeFields`], `<time> <LEVEL> <target>: <fields>`, for less: the
/// default format writes the level and the target through `core::fmt` and its colour styles
/// even when there is no colour, and each field through a per-thread scratch buffer and a
/// `dyn fmt::Write`; this one writes the whole line into one per-thread buffer ([`Fields`]
/// formats each value in place) and hands it over at once. With the vector byte checks below,
/// the token endpoint's decision line went from 10.0 k to 6.1 k instructions
/// (`benches/RESULTS.md`).
///
/// Where the default format would write more than that, it writes the line itself: colour
/// (a terminal), an event inside a span (span names and fields before the target) and a
/// record of the `log` crate (whose target is the record's own). A test checks that both
/// write the same text.
#[derive(Debug)]
pub struct TextLines<T = Timestamp> {
    timer: T,
    full: tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Full, T>,
}

impl TextLines {
    /// Lines stamped by [`Timestamp`].
    pub fn new() -> TextLines {
        TextLines::with_timer(Timestamp)
    }
}

impl Default for TextLines {
    fn default() -> Self {
        TextLines::new()
    }
}

impl<T: tracing_subscriber::fmt::time::FormatTime + Clone> TextLines<T> {
    /// Lines stamped by `timer`.
    pub fn with_timer(timer: T) -> TextLines<T> {
        TextLines {
            full: tracing_subscriber::fmt::format::Format::default().with_timer(timer.clone()),
            timer,
        }
    }
}

thread_local! {
    /// Where [`TextLines`] writes a line before handing it over; keeps its capacity.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<T: tracing_subscriber::fmt::time::FormatTime> TextLines<T> {
    fn write_line(&self, line: &mut String, event: &tracing::Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        // As the default format: a timer that fails leaves its text and a note.
        if self.timer.format_time(&mut Writer::new(line)).is_err() {
            line.push_str("<unknown time>");
        }
        line.push(' ');
        // The default format's level texts, padded to five.
        line.push_str(match *meta.level() {
            tracing::Level::TRACE => "TRACE",
            tracing::Level::DEBUG => "DEBUG",
            tracing::Level::INFO => " INFO",
            tracing::Level::WARN => " WARN",
            tracing::Level::ERROR => "ERROR",
        });
        line.push(' ');
        line.push_str(meta.target());
        line.push_str(": ");
        let mut fields = Fields::new(line);
        event.record(&mut fields);
        fields.result?;
        line.push('\n');
        Ok(())
    }
}

impl<S, T> tracing_subscriber::fmt::FormatEvent<S, SafeFields> for TextLines<T>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    T: tracing_subscriber::fmt::time::FormatTime,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, SafeFields>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let log_record = meta.target() == "log" && meta.fields().field("log.target").is_some();
        if writer.has_ansi_escapes() || log_record || ctx.event_scope().is_some() {
            return self.full.format_event(ctx, writer, event);
        }
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                let written = self
                    .write_line(&mut line, event)
                    .and_then(|()| writer.write_str(&line));
                if line.capacity() > 64 * 1024 {
                    *line = String::new();
                }
                written
            }
            // Formatting a value logged something itself: a buffer of its own.
            Err(_) => {
                let mut line = String::new();
                self.write_line(&mut line, event)?;
                writer.write_str(&line)
            }
        })
    }
}

/// The text format's fields: `name=value`, separated by spaces, the message first and bare.
///
/// A value that is all printable ASCII other than `"` and `\` is written as it is; any other
/// value is quoted and escaped, so no value can end the line or pass for another field. String
/// values (`name = "literal"` in the macros) are always quoted, as `tracing`'s default format
/// does. The message is written bare with control characters escaped.
///
/// [`TextLines`] writes an event's fields with [`Fields`] straight into its line; this
/// [`MakeVisitor`] is for the default format's paths (spans' fields, and the events
/// [`TextLines`] leaves to it).
#[derive(Debug, Clone, Copy, Default)]
pub struct SafeFields;

impl<'w> MakeVisitor<Writer<'w>> for SafeFields {
    type Visitor = SafeVisitor<'w>;

    fn make_visitor(&self, target: Writer<'w>) -> SafeVisitor<'w> {
        SafeVisitor {
            writer: target,
            fields: String::new(),
            first: true,
            result: Ok(()),
        }
    }
}

/// Writes one event's (or span's) fields for [`SafeFields`]: gathered with [`Fields`]' rules,
/// written out at [`VisitOutput::finish`].
pub struct SafeVisitor<'w> {
    writer: Writer<'w>,
    fields: String,
    first: bool,
    result: fmt::Result,
}

impl SafeVisitor<'_> {
    fn fields(&mut self) -> Fields<'_> {
        Fields {
            line: &mut self.fields,
            first: self.first,
            result: std::mem::replace(&mut self.result, Ok(())),
        }
    }

    fn keep(&mut self, fields: (bool, fmt::Result)) {
        (self.first, self.result) = fields;
    }
}

impl Visit for SafeVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let mut fields = self.fields();
        fields.record_str(field, value);
        let state = fields.state();
        self.keep(state);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut fields = self.fields();
        fields.record_debug(field, value);
        let state = fields.state();
        self.keep(state);
    }
}

impl VisitOutput<fmt::Result> for SafeVisitor<'_> {
    fn finish(mut self) -> fmt::Result {
        self.result?;
        self.writer.write_str(&self.fields)
    }
}

impl VisitFmt for SafeVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.fields
    }
}

/// Appends fields to a line, each value formatted in place and then checked: the common value
/// (printable ASCII, nothing to escape) costs one format and one byte scan; any other is
/// taken back out and written quoted and escaped.
struct Fields<'a> {
    line: &'a mut String,
    first: bool,
    result: fmt::Result,
}

impl<'a> Fields<'a> {
    fn new(line: &'a mut String) -> Fields<'a> {
        Fields {
            line,
            first: true,
            result: Ok(()),
        }
    }

    fn state(self) -> (bool, fmt::Result) {
        (self.first, self.result)
    }

    fn name(&mut self, field: &Field) -> bool {
        if self.first {
            self.first = false;
        } else {
            self.line.push(' ');
        }
        let message = field.name() == "message";
        if !message {
            self.line.push_str(field.name());
            self.line.push('=');
        }
        message
    }

    fn debug(&mut self, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
        let message = self.name(field);
        let start = self.line.len();
        write!(self.line, "{value:?}")?;
        let written = &self.line.as_bytes()[start..];
        if message {
            if all_bytes(written, is_plain) {
                return Ok(());
            }
        } else if is_bare(written) {
            return Ok(());
        } else if quotes_only(written) {
            // Spaces, say: quoted, nothing escaped.
            self.line.insert(start, '"');
            self.line.push('"');
            return Ok(());
        }
        let text = self.line.split_off(start);
        if message {
            write_bare(self.line, &text)
        } else {
            write_quoted(self.line, &text)
        }
    }
}

/// Fields that tracing-log adds to a record of the `log` crate (its target, module, file and
/// line), which the default format leaves out too: the target is the line's own.
fn from_log(field: &Field) -> bool {
    field.name().starts_with("log.")
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() || from_log(field) {
            return;
        }
        self.result = if self.name(field) {
            write_bare(self.line, value)
        } else {
            write_quoted(self.line, value)
        };
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() || from_log(field) {
            return;
        }
        self.result = self.debug(field, value);
    }
}

/// Characters that are escaped wherever they appear: they could end a line (for a terminal, a
/// log viewer or a shipper), or reorder what a person sees.
fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Whether a field value is written as it is: printable ASCII but space, `"` and `\\`.
fn is_bare(value: &[u8]) -> bool {
    all_bytes(value, |b| b.is_ascii_graphic() & (b != b'"') & (b != b'\\'))
}

/// Whether a quoted value is written as it is: printable ASCII but `"` and `\\`.
fn quotes_only(value: &[u8]) -> bool {
    all_bytes(value, |b| is_plain(b) & (b != b'"') & (b != b'\\'))
}

/// A byte that is printable ASCII (space included): never [`must_escape`].
fn is_plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b)
}

fn write_escaped(w: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\n' => w.write_str("\\n"),
        '\r' => w.write_str("\\r"),
        '\t' => w.write_str("\\t"),
        c => write!(w, "\\u{{{:x}}}", u32::from(c)),
    }
}

/// A field value: bare when it is all printable ASCII but `"` and `\` (empty included),
/// quoted and escaped otherwise.
pub fn write_value(w: &mut impl fmt::Write, value: &str) -> fmt::Result {
    if is_bare(value.as_bytes()) {
        w.write_str(value)
    } else {
        write_quoted(w, value)
    }
}

/// `value` in double quotes, with `"` and `\` backslash-escaped and [`must_escape`] characters
/// written as `\n`, `\r`, `\t` or `\u{..}`.
pub fn write_quoted(w: &mut impl fmt::Write, value: &str) -> fmt::Result {
    w.write_char('"')?;
    // Most values are printable ASCII with nothing to escape: one byte scan, one copy.
    if quotes_only(value.as_bytes()) {
        w.write_str(value)?;
        return w.write_char('"');
    }
    let mut rest = value;
    while let Some(i) = rest.find(|c: char| c == '"' || c == '\\' || must_escape(c)) {
        w.write_str(&rest[..i])?;
        let c = rest[i..].chars().next().unwrap_or(' ');
        match c {
            '"' => w.write_str("\\\"")?,
            '\\' => w.write_str("\\\\")?,
            c => write_escaped(w, c)?,
        }
        rest = &rest[i + c.len_utf8()..];
    }
    w.write_str(rest)?;
    w.write_char('"')
}

/// The message: as it is, but [`must_escape`] characters escaped.
fn write_bare(w: &mut impl fmt::Write, value: &str) -> fmt::Result {
    if all_bytes(value.as_bytes(), is_plain) {
        return w.write_str(value);
    }
    let mut rest = value;
    while let Some(i) = rest.find(must_escape) {
        w.write_str(&rest[..i])?;
        let c = rest[i..].chars().next().unwrap_or(' ');
        write_escaped(w, c)?;
        rest = &rest[i + c.len_utf8()..];
    }
    w.write_str(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timestamp is the default timer's text, within a second and across seconds, days
    /// and years (the cache is per second).
    #[test]
    fn timestamps_read_as_the_default_timers() {
        for (secs, micros) in [
            (1_780_315_200, 0),
            (1_780_315_200, 123_456),
            (1_780_315_200, 999_999),
            (1_780_315_201, 7),
            (1_780_315_200, 500_000),
            (1_798_761_599, 999_999),
            (1_798_761_600, 1),
            (0, 42),
            (253_402_300_799, 999_999),
        ] {
            let mut ours = String::new();
            Timestamp::write_at(&mut ours, secs, micros).unwrap();
            let t = chrono::DateTime::from_timestamp(secs, micros * 1000).unwrap();
            assert_eq!(ours, t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
        }
        let mut line = String::new();
        tracing_subscriber::fmt::time::FormatTime::format_time(
            &Timestamp,
            &mut Writer::new(&mut line),
        )
        .unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(&line).unwrap();
        assert!(
            (chrono::Utc::now() - parsed.to_utc()).num_seconds().abs() < 5,
            "{line}"
        );
        assert_eq!(line.len(), "2026-06-01T12:00:00.123456Z".len(), "{line}");
    }

    /// A fixed time, so that two formats' lines can be compared.
    #[derive(Clone)]
    struct Noon;

    impl tracing_subscriber::fmt::time::FormatTime for Noon {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            w.write_str("2026-06-01T12:00:00.000000Z")
        }
    }

    /// Logs something while it is being formatted (which `tracing` drops).
    struct Chatty;

    impl fmt::Display for Chatty {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            tracing::info!(inner = %"x y", "formatting a value");
            f.write_str("chatty")
        }
    }

    /// What `log` writes at every level through `TextLines` and through the default format
    /// (same timer, same fields, colour when `ansi`): (ours, theirs).
    fn in_both_formats(ansi: bool, log: impl FnOnce()) -> (String, String) {
        use crate::testing::Captured;
        let (ours, theirs) = (Captured::default(), Captured::default());
        let (o, t) = (ours.clone(), theirs.clone());
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::TRACE)
            .with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(SafeFields)
                    .event_format(TextLines::with_timer(Noon))
                    .with_ansi(ansi)
                    .with_writer(move || o.clone()),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_timer(Noon)
                    .with_ansi(ansi)
                    .fmt_fields(SafeFields)
                    .with_writer(move || t.clone()),
            );
        tracing::subscriber::with_default(subscriber, log);
        (ours.text(), theirs.text())
    }

    /// `TextLines` writes what `tracing_subscriber`'s default format writes with the same
    /// timer and fields: every level, targets, field kinds, values that are quoted and
    /// escaped, messages with line breaks, no message, a value that logs while formatted, a
    /// record of the `log` crate, events in spans, and colour.
    #[test]
    fn text_lines_read_as_the_default_formats() {
        for ansi in [false, true] {
            let (ours, theirs) = in_both_formats(ansi, || {
                let error = std::io::Error::other("disk \"full\"\nnext line");
                tracing::trace!(n = 1, "trace");
                tracing::debug!(flag = true, negative = -3, ratio = 0.5, "debug");
                tracing::info!(
                    token = %"ci-bot", service = %"registry.local", grant_type = "basic",
                    requested = %"repository:a/b:pull,push repository:c:pull", client_id = %"",
                    outcome = "issued", "token decision"
                );
                tracing::warn!(name = %"two words", quoted = %r#"a"b\c"#, "warn");
                tracing::error!(error = %error, dbg = ?("x", 1), err = &error as &dyn std::error::Error, "error");
                tracing::info!(target: "other::target", forged = %"x\n2026 INFO y: z", line = %"a\u{2028}b\u{202e}c zoë", "m");
                tracing::info!("message \"quoted\"\nforged\t\u{1b}[31m and zoë");
                tracing::info!(only = %"fields");
                tracing::info!(value = %Chatty, "outer");
                tracing_log::format_trace(
                    &log::Record::builder()
                        .args(format_args!("from the log crate"))
                        .level(log::Level::Warn)
                        .target("sled::pagecache")
                        .module_path(Some("sled::pagecache::iobuf"))
                        .file(Some("src/pagecache/iobuf.rs"))
                        .line(Some(7))
                        .build(),
                )
                .unwrap();
                let span = tracing::info_span!("request", id = %"r 1", path = %"/auth");
                let _entered = span.enter();
                tracing::info!(inside = %"span", "in a span");
            });
            // `tracing` drops the event logged while a value is formatted (no nested dispatch).
            assert_eq!(ours.lines().count(), 11, "{ours}");
            assert_eq!(ours, theirs, "ansi {ansi}");
            if !ansi {
                // A `log` record under its own target, without tracing-log's fields.
                assert!(
                    ours.contains(" WARN sled::pagecache: from the log crate\n"),
                    "{ours}"
                );
            }
        }
    }

    /// Any text, as a `%value`, a `?value`, a string value and a message, reads the same in
    /// both formats, and as the rules of [`write_value`], [`write_quoted`] and [`write_bare`]
    /// say.
    #[test]
    fn text_lines_read_as_the_default_formats_whatever_the_values() {
        use proptest::prelude::*;
        proptest!(|(s in "\\PC*|[\\x00-\\x7f\u{85}\u{2028}\u{2029}\u{202e}]*")| {
            let (ours, theirs) = in_both_formats(false, || {
                tracing::info!(display = %s, string = s.as_str(), debug = ?s, "{s}");
            });
            prop_assert_eq!(ours.lines().count(), 1, "{}", ours);
            prop_assert_eq!(&ours, &theirs);
            // Both formats write fields with `Fields`: its in-place checks against the
            // writers that state the rules.
            let (mut message, mut string) = (String::new(), String::new());
            write_bare(&mut message, &s).unwrap();
            write_quoted(&mut string, &s).unwrap();
            let expected = format!(
                "2026-06-01T12:00:00.000000Z  INFO regauth::logging::tests: {message} display={} string={string} debug={}\n",
                value(&s),
                value(&format!("{s:?}")),
            );
            prop_assert_eq!(ours, expected);
        });
    }

    fn value(s: &str) -> String {
        let mut out = String::new();
        write_value(&mut out, s).unwrap();
        out
    }

    #[test]
    fn plain_values_stay_bare_and_others_are_quoted_and_escaped() {
        assert_eq!(value("ci-bot"), "ci-bot");
        assert_eq!(
            value("repository:team/app:pull,push"),
            "repository:team/app:pull,push"
        );
        assert_eq!(value(""), "");
        assert_eq!(value("two words"), r#""two words""#);
        assert_eq!(value(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(
            value("nobody\n2026-01-01T00:00:00Z  INFO x: token decision outcome=\"issued\""),
            r#""nobody\n2026-01-01T00:00:00Z  INFO x: token decision outcome=\"issued\"""#
        );
        assert_eq!(value("a\r\tb\u{1b}[31m"), r#""a\r\tb\u{1b}[31m""#);
        assert_eq!(
            value("a\u{2028}b\u{85}c\u{202e}d"),
            r#""a\u{2028}b\u{85}c\u{202e}d""#
        );
        assert_eq!(value("zoë"), r#""zoë""#, "non-ASCII is quoted, not mangled");
    }

    #[test]
    fn json_lines_escape_what_serde_json_leaves_raw() {
        use std::io::Write as _;
        let mut out = EscapingWriter(Vec::new());
        let line =
            serde_json::json!({"token": "a\u{202e}b\u{2066}c\u{2028}d\u{85}e zoë"}).to_string();
        out.write_all(line.as_bytes()).unwrap();
        let written = String::from_utf8(out.0).unwrap();
        assert_eq!(written, r#"{"token":"a\u202eb\u2066c\u2028d\u0085e zoë"}"#);
        let back: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(back["token"], "a\u{202e}b\u{2066}c\u{2028}d\u{85}e zoë");
    }

    #[test]
    fn messages_keep_their_text_but_not_their_line_breaks() {
        let mut out = String::new();
        write_bare(&mut out, "token \"decision\"\nforged").unwrap();
        assert_eq!(out, r#"token "decision"\nforged"#);
    }

    /// No input, however built, writes a line break or an unescaped quote inside a value.
    #[test]
    fn no_value_contains_a_raw_line_break() {
        use proptest::prelude::*;
        proptest!(|(s in "\\PC*|[\\x00-\\x7f\u{85}\u{2028}\u{2029}]*")| {
            let out = value(&s);
            const BREAKS: [char; 5] = ['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'];
            prop_assert!(!out.contains(BREAKS), "{out}");
            if out.starts_with('"') {
                let inner = &out[1..out.len() - 1];
                // every quote inside is escaped
                let mut escaped = false;
                for c in inner.chars() {
                    if c == '"' { prop_assert!(escaped); }
                    escaped = c == '\\' && !escaped;
                }
            } else {
                prop_assert!(!out.contains([' ', '"']));
            }
        });
    }
}
