//! A `nats-server` with JetStream, started and stopped by the caller: for
//! tests, benchmarks and demos.
//!
//! It runs `nats-server -js -a 127.0.0.1 -p <port> -sd <dir>` (the binary
//! from `$EVBUS_NATS_SERVER`, else `nats-server` on the `PATH`) on a free
//! loopback port with a fresh store directory, waits until the port accepts
//! connections, and kills the process and removes the directory when
//! dropped.

use std::{
    io,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::sync::{AtomicU64, Ordering};

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// A running `nats-server`; killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
}

impl NatsServer {
    /// Starts a server on a free loopback port, with a new store directory
    /// under the system's temporary directory.
    ///
    /// # Errors
    ///
    /// The binary is missing (the message says how to install it), or the
    /// server did not accept connections within 20 s.
    pub fn start() -> io::Result<Self> {
        // Relaxed: only uniqueness matters.
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let store = std::env::temp_dir().join(format!(
            "evbus-nats-{}-{}-{n}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&store)?;
        let mut server = NatsServer {
            child: None,
            port: 0,
            store,
        };
        // A port another process took between our check and the server's
        // bind makes the server exit: try another.
        let mut last = None;
        for _ in 0..5 {
            server.port = free_port()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free port")))
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The store directory.
    pub fn store_dir(&self) -> &Path {
        &self.store
    }

    /// Kills the server with SIGKILL (no clean shutdown), keeping its store.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server cleanly (SIGTERM: it flushes its store and closes
    /// its connections), keeping its store; SIGKILL if it has not exited
    /// after 20 s.
    pub fn stop(&mut self) {
        let Some(child) = &mut self.child else { return };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// Freezes the server (SIGSTOP): its connections stay open but it
    /// answers nothing, as a server that hangs. [`resume`](NatsServer::resume)
    /// undoes it; [`kill`](NatsServer::kill) and drop work on a frozen
    /// server.
    ///
    /// # Errors
    ///
    /// The `kill` command failed or the server is not running.
    ///
    /// Returns once the process is stopped (its state in `/proc` is `T`,
    /// on Linux), not only signalled: a server that ran on a little while
    /// after `kill` returned could still acknowledge what the caller
    /// publishes next.
    pub fn pause(&self) -> io::Result<()> {
        self.signal("-STOP")?;
        self.await_state(true)
    }

    /// Resumes a server [`pause`](NatsServer::pause)d (SIGCONT).
    ///
    /// # Errors
    ///
    /// As [`pause`](NatsServer::pause).
    pub fn resume(&self) -> io::Result<()> {
        self.signal("-CONT")?;
        self.await_state(false)
    }

    /// Waits until the process is stopped (`stopped`) or running again, as
    /// `/proc/<pid>/stat` says; at most 10 s, then an error. Where `/proc`
    /// cannot be read (not Linux), returns at once.
    fn await_state(&self, stopped: bool) -> io::Result<()> {
        let Some(child) = &self.child else {
            return Err(io::Error::other("the server is not running"));
        };
        let stat = format!("/proc/{}/stat", child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let Ok(text) = std::fs::read_to_string(&stat) else {
                return Ok(());
            };
            // The state follows the command name, which is in parentheses
            // and may itself hold spaces.
            let state = text
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            let is_stopped = matches!(state, Some("T" | "t"));
            if is_stopped == stopped {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!(
                    "the server did not {} within 10 s (state {state:?})",
                    if stopped { "stop" } else { "resume" }
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn signal(&self, signal: &str) -> io::Result<()> {
        let Some(child) = &self.child else {
            return Err(io::Error::other("the server is not running"));
        };
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill {signal} failed: {status}")))
        }
    }

    /// Starts the server again on the same port and store (after
    /// [`kill`](NatsServer::kill) or [`stop`](NatsServer::stop); kills it
    /// first if it runs).
    ///
    /// # Errors
    ///
    /// As [`start`](NatsServer::start).
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn()
    }

    fn spawn(&mut self) -> io::Result<()> {
        let binary = std::env::var_os("EVBUS_NATS_SERVER").unwrap_or_else(|| "nats-server".into());
        let child = Command::new(&binary)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(&self.store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot run {binary:?} ({e}); install it (`apt-get install nats-server`) \
                         or set EVBUS_NATS_SERVER"
                    ),
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let exited = match &mut self.child {
                Some(child) => child.try_wait().ok().flatten(),
                None => None,
            };
            // Accepting, and still ours: a server that lost the port to
            // another process exits, while the other one accepts.
            if exited.is_none() && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                std::thread::sleep(Duration::from_millis(50));
                if let Some(child) = &mut self.child
                    && let Ok(None) = child.try_wait()
                {
                    return Ok(());
                }
                continue;
            }
            if let Some(status) = exited {
                self.child = None;
                return Err(io::Error::other(format!(
                    "nats-server exited with {status} before accepting connections"
                )));
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "nats-server did not accept connections within 20 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// A free port in 20000..32000, below Linux's ephemeral range, so that a
/// port given up for a restart is not handed to an outgoing connection.
fn free_port() -> io::Result<u16> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id().rotate_left(16);
    // Relaxed: only a different start per call matters.
    let mut n = u64::from(seed) + NEXT_DIR.fetch_add(7919, Ordering::Relaxed);
    for _ in 0..1000 {
        let port = 20_000 + (n % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            >> 1;
    }
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
