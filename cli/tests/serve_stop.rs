//! How `strata serve` stops: Ctrl-C ends it cleanly also when `--duration` is given,
//! and a store that can no longer write (disk full) ends it at once with the error and
//! a non-zero exit, instead of serving on until `--duration` ends.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_strata");

/// Starts `strata serve` with `config` and `--duration`; returns once it serves.
fn start(config: &Path, duration_secs: u64) -> Child {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .args(["--duration", &duration_secs.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("serve exited before printing its address").unwrap();
        if line.starts_with("gateway: ws://") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    child
}

/// Waits for `child` to exit; kills it and fails the test after `limit`. Returns its
/// status and stderr.
fn exit_within(child: &mut Child, limit: Duration) -> (ExitStatus, String) {
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("strata serve still ran {limit:?} later: {}", reader.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().unwrap())
}

#[test]
fn ctrl_c_stops_serve_with_a_duration() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        "[store]\ndir = \"store\"\n[gateway]\naddr = \"127.0.0.1:0\"\n[feed]\nrate = 200\nbatch = 2\n",
    )
    .unwrap();
    let mut child = start(&config, 600);
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let (status, stderr) = exit_within(&mut child, Duration::from_secs(120));
    assert!(status.success(), "serve did not stop cleanly on Ctrl-C: {status}\n{stderr}");
    assert!(stderr.contains("stopped at seq"), "{stderr}");
}

/// A small tmpfs mounted over a temporary directory (needs root); unmounted on drop.
struct SmallFs(tempfile::TempDir);

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        let dir = tempfile::tempdir().ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs to fill (needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(SmallFs(dir))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn serve_on_a_full_disk_exits_with_the_error() {
    let Some(fs) = SmallFs::mount("3m") else { return };
    let config = fs.0.path().join("serve.toml");
    std::fs::write(
        &config,
        "[store]\ndir = \"store\"\n[store.stack.wal]\nsegment_size_bytes = 1048576\n\
         [gateway]\naddr = \"127.0.0.1:0\"\n[feed]\nrate = 50000\nbatch = 50\n",
    )
    .unwrap();
    let mut child = start(&config, 600);
    let (status, stderr) = exit_within(&mut child, Duration::from_secs(120));
    assert!(!status.success(), "serve on a full disk exited 0:\n{stderr}");
    assert!(stderr.contains("Error: ") && stderr.contains("feed"), "{stderr}");
}

#[test]
fn ws_subscriber_prints_its_last_sequence_when_the_server_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        "[store]\ndir = \"store\"\n[gateway]\naddr = \"127.0.0.1:0\"\n[feed]\nrate = 400\nbatch = 4\n",
    )
    .unwrap();
    let mut serve = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(serve.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve exited before printing its address").unwrap();
        if let Some(rest) = line.strip_prefix("gateway: ws://") {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});

    let mut sub = Command::new(BIN)
        .args(["subscribe", "--transport", "ws", "--topic", "commits", "--from", "1"])
        .args(["--addr", &addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the subscriber printed a few frames, the server goes away.
    let mut frames = BufReader::new(sub.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        frames.next().expect("the subscriber printed no frame").unwrap();
    }
    serve.kill().unwrap();
    serve.wait().unwrap();
    std::thread::spawn(move || for _ in frames {});
    let (status, stderr) = exit_within(&mut sub, Duration::from_secs(120));
    assert!(!status.success(), "losing the server is an error: {stderr}");
    let last = stderr
        .lines()
        .find_map(|l| l.strip_prefix("last seq "))
        .unwrap_or_else(|| panic!("no last sequence printed: {stderr}"));
    assert!(last.trim().parse::<u64>().unwrap() >= 3, "{stderr}");
}
