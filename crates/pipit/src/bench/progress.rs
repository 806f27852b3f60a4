//! The progress line: one line on standard error, rewritten four times a second,
//! only when standard error is a terminal (a log or a pipe gets the report alone).

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// How often the line is rewritten.
const EVERY: Duration = Duration::from_millis(250);

/// A running progress line; [`Progress::finish`] clears it.
pub struct Progress {
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Shows `label`, the seconds since now, and what `status` says, until finished.
    pub fn start(label: String, status: impl Fn() -> String + Send + 'static) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { task: None };
        }
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            loop {
                tick.tick().await;
                let line = format!(
                    "{label} {:>6.1} s  {}",
                    started.elapsed().as_secs_f64(),
                    status()
                );
                let mut err = std::io::stderr().lock();
                // Clears the rest of the old line, which may have been longer.
                let _ = write!(err, "\r{line}\x1b[K");
                let _ = err.flush();
            }
        });
        Progress { task: Some(task) }
    }

    /// Stops and clears the line (after the task has stopped, so that it cannot
    /// write again).
    pub async fn finish(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}
