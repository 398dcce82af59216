//! The log sink of `regauth serve`: a writer that batches lines and never blocks a request.
//!
//! Request threads append each formatted line to one shared buffer: a short mutex hold and a
//! `memcpy`, no system call, and no allocation once the buffer has grown. One background thread
//! takes the whole buffer at a time and writes it out, then waits [`BATCH_WINDOW`] so that under
//! load many lines share one `write(2)`. When idle, a line is written as soon as it is logged.
//!
//! Why not `tracing-appender`'s `NonBlocking`: it sends every line as its own heap-allocated
//! channel message, and its worker wakes and writes for nearly every line. Under load that
//! worker's wake-ups and `write(2)`s cost about as much CPU as the rest of the decision logging
//! on the token path (`benches/RESULTS.md`, "Hot-path findings").
//!
//! Never blocking: when [`MAX_PENDING`] bytes are waiting (the output is slower than the
//! logging, or nobody reads the pipe), new lines are dropped and counted, and once the writer
//! can write again it adds one line saying how many were dropped. A stalled log reader thus
//! costs log lines, never requests.
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer thread gathers lines after each write.
pub const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// Bytes waiting to be written beyond which new lines are dropped (and counted).
pub const MAX_PENDING: usize = 4 * 1024 * 1024;
/// A buffer that grew beyond this during a burst is released after its batch is written.
const KEEP_CAPACITY: usize = 256 * 1024;

struct State {
    /// Lines logged and not yet taken by the writer thread.
    pending: Vec<u8>,
    /// The writer thread is waiting for lines (and must be woken for the next one).
    writer_idle: bool,
    /// Lines dropped because `pending` was full, since the writer last said so.
    dropped: u64,
    /// The guard was dropped: write what is left and stop.
    closing: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signals the writer thread: lines arrived, or closing.
    lines: Condvar,
    max_pending: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only bytes in a Vec: still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn append(&self, bytes: &[u8]) {
        let mut state = self.lock();
        if state.pending.len() >= self.max_pending {
            // The output is not keeping up: losing a line beats stalling a request.
            state.dropped += 1;
            return;
        }
        state.pending.extend_from_slice(bytes);
        if state.writer_idle {
            state.writer_idle = false;
            self.lines.notify_one();
        }
    }
}

/// The [`MakeWriter`] handed to the tracing subscriber. Cheap to clone.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Stops the writer thread when dropped, after it has written every line logged before.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl BatchWriter {
    /// Starts the writer thread over `out` (stderr for the server).
    pub fn spawn(out: impl Write + Send + 'static) -> io::Result<(BatchWriter, FlushGuard)> {
        Self::spawn_with_limit(out, MAX_PENDING)
    }

    fn spawn_with_limit(
        out: impl Write + Send + 'static,
        max_pending: usize,
    ) -> io::Result<(BatchWriter, FlushGuard)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: Vec::with_capacity(64 * 1024),
                writer_idle: false,
                dropped: 0,
                closing: false,
            }),
            lines: Condvar::new(),
            max_pending,
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_loop(&worker, out))?;
        Ok((
            BatchWriter {
                shared: shared.clone(),
            },
            FlushGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }
}

fn write_loop(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        let (closing, dropped) = {
            let mut state = shared.lock();
            while state.pending.is_empty() && !state.closing {
                state.writer_idle = true;
                state = shared
                    .lines
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if state.pending.is_empty() {
                return; // closing, and everything is written
            }
            std::mem::swap(&mut state.pending, &mut batch);
            (state.closing, std::mem::take(&mut state.dropped))
        };
        if dropped > 0 {
            // After the batch: the lines were dropped once it was full.
            batch.extend_from_slice(dropped_line(dropped).as_bytes());
        }
        // A log line that cannot be written has nowhere else to go: drop it and go on.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if batch.capacity() > KEEP_CAPACITY {
            batch = Vec::with_capacity(64 * 1024);
        }
        if !closing {
            std::thread::sleep(BATCH_WINDOW);
        }
    }
}

/// The line that says how many lines were dropped, shaped like the subscriber's lines.
fn dropped_line(n: u64) -> String {
    format!(
        "{}  WARN regauth::logging::writer: {n} log lines dropped: the log output did not keep up dropped={n}\n",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ")
    )
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            state.closing = true;
            self.shared.lines.notify_one();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Appends to the shared buffer; never fails.
pub struct Appender<'a> {
    shared: &'a Shared,
}

impl Write for Appender<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.shared.append(bytes);
        Ok(bytes.len())
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.shared.append(bytes);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = Appender<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        Appender {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    /// An in-memory output that records each `write_all` batch.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(bytes.to_vec());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().concat()).unwrap()
        }
    }

    #[test]
    fn every_line_from_every_thread_is_written_whole_by_drop() {
        let sink = Sink::default();
        let (writer, guard) = BatchWriter::spawn(sink.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    // One `write_all` per line, as tracing-subscriber's fmt layer does.
                    for i in 0..5_000 {
                        let line = format!("thread {t} line {i}\n");
                        writer.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = sink.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_000);
        for t in 0..4 {
            let own: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let expected: Vec<String> =
                (0..5_000).map(|i| format!("thread {t} line {i}")).collect();
            assert!(
                own == expected,
                "thread {t}'s lines are not all there, in order"
            );
        }
        // Batching: far fewer writes than lines.
        assert!(sink.0.lock().unwrap().len() < 20_000);
    }

    #[test]
    fn an_idle_writer_writes_a_line_promptly() {
        let sink = Sink::default();
        let (writer, _guard) = BatchWriter::spawn(sink.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(50)); // the writer thread is now idle
        writer.make_writer().write_all(b"hello\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while sink.text() != "hello\n" {
            assert!(
                Instant::now() < deadline,
                "line not written: {:?}",
                sink.text()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// An output whose first write blocks until the test releases it.
    struct Gate {
        entered: mpsc::Sender<()>,
        release: mpsc::Receiver<()>,
        sink: Sink,
    }

    impl Write for Gate {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let _ = self.entered.send(());
            let _ = self.release.recv();
            self.sink.write(bytes)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_buffer_drops_lines_without_waiting_and_says_how_many() {
        let (entered_tx, entered) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let sink = Sink::default();
        let gate = Gate {
            entered: entered_tx,
            release: release_rx,
            sink: sink.clone(),
        };
        let (writer, guard) = BatchWriter::spawn_with_limit(gate, 8).unwrap();
        writer.make_writer().write_all(b"first\n").unwrap();
        entered.recv().unwrap(); // the writer holds "first" and is stuck in the output
        writer.make_writer().write_all(b"second\n").unwrap(); // 0 < 8 pending: kept
        let (done_tx, done) = mpsc::channel();
        let logger = {
            let writer = writer.clone();
            std::thread::spawn(move || {
                writer.make_writer().write_all(b"third\n").unwrap(); // 7 < 8: kept
                for _ in 0..1000 {
                    writer.make_writer().write_all(b"lost\n").unwrap(); // 13 >= 8: dropped
                }
                done_tx.send(()).unwrap();
            })
        };
        done.recv_timeout(Duration::from_secs(5))
            .expect("the logger never waits for a stuck output");
        logger.join().unwrap();
        for _ in 0..3 {
            let _ = release.send(());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sink.text().contains("dropped") {
            assert!(Instant::now() < deadline, "{:?}", sink.text());
            std::thread::sleep(Duration::from_millis(1));
        }
        // Room again: logged as usual.
        writer.make_writer().write_all(b"after\n").unwrap();
        drop(release);
        drop(guard);
        let text = sink.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..3], ["first", "second", "third"], "{text}");
        assert!(
            lines[3].contains("WARN regauth::logging::writer: 1000 log lines dropped"),
            "{text}"
        );
        assert_eq!(lines[4..], ["after"], "{text}");
    }
}
