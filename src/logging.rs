//! Logging to the console and to daily-rotating files. Console lines go around the progress
//! bar (`progress`), not through it. Both writers mask registered secrets (`redact`): this
//! is the one point every log line passes, whatever logged it.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};

use indicatif::ProgressBar;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LoggingSettings;

/// The bar currently drawn, if any, so log lines can be printed above it.
static ACTIVE_BAR: OnceLock<Mutex<Option<ProgressBar>>> = OnceLock::new();

pub(crate) fn active_bar() -> &'static Mutex<Option<ProgressBar>> {
    ACTIVE_BAR.get_or_init(|| Mutex::new(None))
}

/// The target of log lines whose text the command also prints on stdout (the run's
/// summary). When stdout and stderr are the same terminal the console log leaves them out,
/// so the screen shows them once; log files and a redirected stderr keep them.
pub const PRINTED: &str = "callq::printed";

/// Maps the old tool's Python level names onto tracing's.
fn level_filter(level: &str) -> &'static str {
    match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "WARN" | "WARNING" => "warn",
        "ERROR" | "CRITICAL" | "FATAL" => "error",
        _ => "info",
    }
}

/// Keeps the file writer flushing until the process ends.
pub struct LogGuard {
    _file: Option<WorkerGuard>,
}

/// Sets up logging once per process. `RUST_LOG`, when set, overrides LOGGING_LEVEL.
pub fn init(settings: &LoggingSettings) -> LogGuard {
    let level = level_filter(&settings.level);
    // Dependencies log at warn at most: their debug lines can carry request details. The
    // OAuth and HTTP crates stay capped even under RUST_LOG, since yup-oauth2 logs the token
    // response at debug level.
    let filter = || {
        let base = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(format!("warn,callq={level},callq_fakes=warn")));
        [
            "yup_oauth2=warn",
            "hyper=warn",
            "hyper_util=warn",
            "reqwest=warn",
            "tokio_postgres=warn",
        ]
        .into_iter()
        .fold(base, |f, d| {
            f.add_directive(d.parse().expect("valid directive"))
        })
    };
    let console = settings.on_console.then(|| {
        let mut console_filter = filter();
        if std::io::stdout().is_terminal() && std::io::stderr().is_terminal() {
            console_filter =
                console_filter.add_directive(format!("{PRINTED}=off").parse().expect("valid"));
        }
        tracing_subscriber::fmt::layer()
            .with_writer(ConsoleWriter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .with_filter(console_filter)
    });
    let mut guard = None;
    let file = if settings.on_file {
        // The builder reports an unwritable LOGGING_DIR instead of panicking, so a run
        // still goes ahead with console logging.
        let appender = std::fs::create_dir_all(&settings.dir)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                tracing_appender::rolling::RollingFileAppender::builder()
                    .rotation(tracing_appender::rolling::Rotation::DAILY)
                    .filename_prefix(format!("{}.log", settings.name))
                    .build(&settings.dir)
                    .map_err(|e| e.to_string())
            });
        match appender {
            Ok(appender) => {
                let (writer, g) = tracing_appender::non_blocking(appender);
                guard = Some(g);
                Some(
                    tracing_subscriber::fmt::layer()
                        .with_writer(Redacting(writer))
                        .with_ansi(false)
                        .with_filter(filter()),
                )
            }
            Err(e) => {
                crate::redact::eprintln(format_args!(
                    "warning: cannot write logs to LOGGING_DIR {}: {e}; logging to the console only",
                    settings.dir.display()
                ));
                None
            }
        }
    } else {
        None
    };
    use tracing_subscriber::Layer;
    let _ = tracing_subscriber::registry()
        .with(console)
        .with(file)
        .try_init();
    mask_panics();
    LogGuard { _file: guard }
}

/// A panic message may quote a value too (an `expect` on a response, say).
fn mask_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let payload = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_string());
            crate::redact::eprintln(format_args!("callq panicked{location}: {payload}"));
        }));
    });
}

/// Wraps a writer factory so each event's bytes are masked before they reach the writer.
struct Redacting<M>(M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            inner: self.0.make_writer(),
            buf: Vec::new(),
        }
    }
}

/// Collects one event (a secret may straddle two `write` calls) and writes it masked.
struct RedactingWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let bytes = std::mem::take(&mut self.buf);
        if !bytes.is_empty() {
            self.inner.write_all(&crate::redact::redact_bytes(&bytes))?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Writes to stderr, suspending the progress bar while a line is printed.
#[derive(Clone, Copy)]
struct ConsoleWriter;

struct LineBuffer(Vec<u8>);

impl Write for LineBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.0);
        let bytes = crate::redact::redact_bytes(&bytes);
        let print = || {
            let _ = std::io::stderr().write_all(&bytes);
        };
        match active_bar().lock().ok().and_then(|b| b.clone()) {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }
}

impl<'a> MakeWriter<'a> for ConsoleWriter {
    type Writer = LineBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        LineBuffer(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn python_level_names_map_to_tracing() {
        assert_eq!(super::level_filter("WARNING"), "warn");
        assert_eq!(super::level_filter("critical"), "error");
        assert_eq!(super::level_filter("DEBUG"), "debug");
        assert_eq!(super::level_filter("nonsense"), "info");
    }
}
