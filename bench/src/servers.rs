//! Servers under test: in-process HTTP servers on a runtime of their own
//! (so the load generator does not share its threads), and redis-server /
//! PostgreSQL started as child processes on loopback ports in temp dirs.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// Worker threads of a server's runtime (the machine has 2 cores).
pub const SERVER_THREADS: usize = 2;

/// An in-process server on its own runtime; stopped when dropped.
pub struct ServerThread {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Runs `serve(stop)` on a fresh runtime; `serve` reports its address
    /// through `bound` and returns once `stop` fires.
    pub fn start<F, Fut>(serve: F) -> anyhow::Result<ServerThread>
    where
        F: FnOnce(oneshot::Sender<SocketAddr>, oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(SERVER_THREADS)
                    .enable_all()
                    .build()
                    .expect("server runtime");
                rt.block_on(async move {
                    let (addr_tx, addr_rx) = oneshot::channel();
                    let forward = async move {
                        if let Ok(addr) = addr_rx.await {
                            let _ = bound_tx.send(Ok(addr));
                        }
                    };
                    let run = serve(addr_tx, stop_rx);
                    let (result, _) = tokio::join!(run, forward);
                    if let Err(e) = result {
                        eprintln!("bench server failed: {e:#}");
                    }
                });
            })?;
        let addr = bound_rx
            .recv_timeout(Duration::from_secs(60))
            .context("the server did not start")?
            .map_err(|e: anyhow::Error| e)?;
        Ok(ServerThread {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for its thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A free loopback port.
/// Every HTTP client the bench uses, built one way: an idle pool below
/// the server's keep-alive and one retry of a request safe to repeat on a
/// reset (`surge::http::client`, the rule the README gives clients).
pub fn http_client_builder() -> reqwest::ClientBuilder {
    surge::http::client::builder()
}

/// [`http_client_builder`] with nothing more set.
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().expect("an HTTP client")
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A child process killed when dropped.
pub struct Daemon {
    child: Child,
    pub port: u16,
    _dir: Option<tempfile::TempDir>,
}

impl Daemon {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The process's resident set size, in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let pid = self.child.id().context("the server exited")?;
        proc_number(&format!("/proc/{pid}/status"), "VmRSS:").context("VmRSS")
    }

    /// Stops the process: SIGTERM, then waits (SIGKILL after 30 s).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            self.child.start_kill()?;
        }
        Ok(())
    }
}

/// Which server `child` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChildKind {
    Surge,
    RawWs,
}

/// Starts this benchmark binary again as a server process (`serve-child`),
/// so what it measures (its memory, say) is the server's alone and its
/// file descriptors do not count against the load generator's. It exits
/// when its stdin closes: it never outlives the benchmark.
pub async fn child(
    kind: ChildKind,
    settings: Option<&surge::config::Settings>,
) -> anyhow::Result<Daemon> {
    use tokio::io::AsyncBufReadExt;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("serve-child")
        .arg(match kind {
            ChildKind::Surge => "surge",
            ChildKind::RawWs => "raw-ws",
        })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    if let Some(s) = settings {
        cmd.arg("--settings").arg(serde_json::to_string(s)?);
    }
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .context("the server did not start within 60 s")??
        .context("the server exited at start")?;
    let port = line
        .strip_prefix("listening on ")
        .and_then(|p| p.trim().parse().ok())
        .with_context(|| format!("unexpected first line from the server: {line}"))?;
    Ok(Daemon {
        child,
        port,
        _dir: None,
    })
}

/// The `serve-child` side: serves until stdin closes or SIGTERM.
pub async fn serve_child(kind: ChildKind, settings: Option<String>) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let stop = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        let eof = async { while stdin.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {} };
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = eof => {},
            _ = term.recv() => {},
        }
    };
    match kind {
        ChildKind::Surge => {
            let settings: surge::config::Settings =
                serde_json::from_str(&settings.context("--settings")?)?;
            let app = surge::app::Application::build(settings).await?;
            println!("listening on {}", app.port());
            app.run_until_stopped(stop).await;
        }
        ChildKind::RawWs => {
            // Surge's default accept backlog (`listen_backlog`), for a fair
            // accept rate.
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            socket.bind(([127, 0, 0, 1], 0).into())?;
            let listener = socket.listen(8192)?;
            println!("listening on {}", listener.local_addr()?.port());
            let (tx, rx) = oneshot::channel();
            let serve = tokio::spawn(crate::rawws::serve(listener, rx));
            stop.await;
            let _ = tx.send(());
            serve.await??;
        }
    }
    Ok(())
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn wait_port(port: u16, child: &mut Child, what: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited at start ({status})");
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{what} did not listen on port {port} within 30 s")
}

/// redis-server on a loopback port with an append-only file fsynced every
/// second (its usual production setting).
pub async fn redis() -> anyhow::Result<Daemon> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("redis-server (bench/scripts/setup installs it)")?;
    wait_port(port, &mut child, "redis-server").await?;
    Ok(Daemon {
        child,
        port,
        _dir: Some(dir),
    })
}

fn postgres_bin() -> anyhow::Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (bench/scripts/setup installs it)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").is_file())
        .collect();
    found.sort();
    found
        .pop()
        .context("no PostgreSQL server binaries under /usr/lib/postgresql")
}

/// As root, PostgreSQL must run as another user: `postgres`.
fn as_postgres(bin: &Path, program: &str) -> Command {
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if is_root {
        // setpriv execs the program itself (no forked parent left behind
        // when the benchmark kills it).
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

/// A private PostgreSQL cluster on a loopback port (trust auth, fsync and
/// synchronous commit on: a commit is durable when it is acknowledged).
pub async fn postgres() -> anyhow::Result<Daemon> {
    let bin = postgres_bin()?;
    let dir = tempfile::Builder::new()
        .prefix("surge-bench-pg")
        .tempdir()?;
    let data = dir.path().join("data");
    let _ = std::process::Command::new("chown")
        .args(["-R", "postgres"])
        .arg(dir.path())
        .status();
    let init = as_postgres(&bin, "initdb")
        .args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
        .arg(&data)
        .stdout(Stdio::null())
        .output()
        .await?;
    if !init.status.success() {
        bail!("initdb failed: {}", String::from_utf8_lossy(&init.stderr));
    }
    let port = free_port()?;
    let mut child = as_postgres(&bin, "postgres")
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.path().display()))
        .args(["-c", "max_connections=200", "-c", "shared_buffers=256MB"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    wait_port(port, &mut child, "postgres").await?;
    // The port opens before the server takes sessions ("the database
    // system is starting up"): wait (bounded) for one that is accepted.
    let started = std::time::Instant::now();
    loop {
        let conn = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
            tokio_postgres::NoTls,
        )
        .await;
        match conn {
            Ok(_) => break,
            Err(_) if started.elapsed() < std::time::Duration::from_secs(30) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => anyhow::bail!("postgres did not take sessions within 30 s: {e}"),
        }
    }
    Ok(Daemon {
        child,
        port,
        _dir: Some(dir),
    })
}

/// The first number after `key` on its line of the `/proc` file at `path`
/// (`VmRSS:` in `/proc/<pid>/status`, `write_bytes:` in `/proc/self/io`).
pub fn proc_number(path: &str, key: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_numbers_of_proc_files() {
        let rss = super::proc_number("/proc/self/status", "VmRSS:");
        assert!(rss.is_some_and(|kib| kib > 0), "{rss:?}");
        assert!(super::proc_number("/proc/self/io", "write_bytes:").is_some());
        assert_eq!(super::proc_number("/proc/self/io", "no_such_key:"), None);
        assert_eq!(super::proc_number("/proc/no/such/file", "VmRSS:"), None);
    }
}
