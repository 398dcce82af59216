//! Logging set-up of `regauth serve`: the `tracing` subscriber (filter from `REGAUTH_LOG`,
//! plain `name=value` fields) writing to stderr through the batching [`writer`].
//!
//! Dependency direction: used by `cli` (for `serve`); depends on `tracing-subscriber` only.
pub mod writer;

/// Logs to stderr through [`writer`]: request threads only append to a buffer, a
/// background thread writes it in batches, so a slow terminal, pipe or disk never stalls a
/// request thread: beyond 4 MB waiting, lines are dropped and counted (and the count logged).
/// `None` (and logging to stderr
/// directly) when the writer thread cannot be started.
pub fn init_tracing() -> Option<writer::FlushGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("REGAUTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a person at a terminal, not in files or journald.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .fmt_fields(plain_fields());
    match writer::BatchWriter::spawn(std::io::stderr()) {
        Ok((writer, guard)) => {
            let _ = builder.with_writer(writer).try_init();
            Some(guard)
        }
        Err(e) => {
            let _ = builder.with_writer(std::io::stderr).try_init();
            tracing::warn!(error = %e, "cannot start the log writer thread; logging directly");
            None
        }
    }
}

/// Fields as `name=value`, separated by spaces, the message first and bare: the default
/// field format's output without its per-field styling, which costs a third of the decision
/// event's formatting even when colours are off (`benches/RESULTS.md`).
fn plain_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        if field.name() == "message" {
            write!(w, "{value:?}")
        } else {
            write!(w, "{field}={value:?}")
        }
    })
    .delimited(" ")
}
