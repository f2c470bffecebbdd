//! Shared by the CLI's end-to-end tests: running the binary with a deadline, so a hung
//! child fails its test (and is killed) instead of hanging `cargo test` while it spins.

#![allow(dead_code)]

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one CLI invocation in these tests may take (debug builds on 2 busy cores).
pub const LIMIT: Duration = Duration::from_secs(600);

/// [`Command::output`] with a deadline.
pub trait OutputWithin {
    /// Runs the command with stdin closed and stdout/stderr captured, like
    /// [`Command::output`]; if it has not exited after `limit`, kills it and panics
    /// naming the command and the end of what it wrote to stderr.
    fn output_within(&mut self, limit: Duration) -> std::io::Result<Output>;
}

impl OutputWithin for Command {
    fn output_within(&mut self, limit: Duration) -> std::io::Result<Output> {
        let mut child =
            self.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut bytes);
                }
                bytes
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let err = stderr.join().unwrap_or_default();
                let tail =
                    String::from_utf8_lossy(&err[err.len().saturating_sub(2000)..]).into_owned();
                panic!(
                    "{self:?} did not finish within {limit:?}; killed it. stderr ends with:\n{tail}"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    }
}
