//! Firing N requests at once and measuring them.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

/// What a burst measured.
pub struct Burst {
    /// Latency of the completed requests.
    pub latency: Latency,
    /// From the start signal to the last answer.
    pub elapsed: Duration,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that failed without an HTTP answer (or ran out of time).
    pub errors: u64,
    /// Per request, in order: its status (0 = no answer) and what the
    /// target returned to be checked afterwards (a claim id, say).
    pub answers: Vec<(u16, Option<String>)>,
}

impl Burst {
    pub fn per_second(&self) -> f64 {
        let done: u64 = self.statuses.values().sum();
        done as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn ms(&self, quantile: f64) -> f64 {
        match &self.latency {
            Latency::Histogram(h) => h.value_at_quantile(quantile) as f64 / 1000.0,
            Latency::Quantiles(q) => {
                q.iter()
                    .find(|(at, _)| (at - quantile).abs() < 1e-9)
                    .map_or(f64::NAN, |(_, us)| *us)
                    / 1000.0
            }
        }
    }
}

/// Latencies in microseconds: every request's (the in-process client), or
/// the quantiles an external generator reports (wrk: 0.5, 0.99, 0.999).
pub enum Latency {
    Histogram(Histogram<u64>),
    Quantiles(Vec<(f64, f64)>),
}

pub fn bar(len: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>14} [{bar:40}] {pos}/{len} {per_sec} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    bar
}

/// Runs `n` requests, all released at the same instant, each answering
/// `(status, payload)`; stops waiting after `limit`.
pub async fn burst<F, Fut>(n: usize, label: &str, limit: Duration, request: F) -> Burst
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(u16, Option<String>), String>> + Send + 'static,
{
    let (go, ready) = watch::channel(false);
    let progress = Arc::new(bar(n as u64, label));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let mut ready = ready.clone();
            let fut = request(i);
            let progress = progress.clone();
            tokio::spawn(async move {
                let _ = ready.wait_for(|go| *go).await;
                let started = Instant::now();
                let answer = fut.await;
                progress.inc(1);
                (answer, started.elapsed())
            })
        })
        .collect();
    // Let every task reach the gate before opening it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    go.send_replace(true);
    let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds");
    let mut statuses = BTreeMap::new();
    let mut errors = 0;
    let mut answers = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + limit;
    for t in tasks {
        match tokio::time::timeout_at(deadline, t).await {
            Ok(Ok((Ok((status, payload)), took))) => {
                let _ = latency.record((took.as_micros() as u64).max(1));
                *statuses.entry(status).or_insert(0) += 1;
                answers.push((status, payload));
            }
            Ok(Ok((Err(_), _))) | Ok(Err(_)) | Err(_) => {
                errors += 1;
                answers.push((0, None));
            }
        }
    }
    let elapsed = started.elapsed();
    progress.finish_with_message(format!(
        "{:.0}/s",
        statuses.values().sum::<u64>() as f64 / elapsed.as_secs_f64()
    ));
    Burst {
        latency: Latency::Histogram(latency),
        elapsed,
        statuses,
        errors,
        answers,
    }
}

/// A client whose pool keeps `n` connections, warmed by one request each
/// to `warm_url`, so a burst measures the servers, not TCP handshakes.
pub async fn warm_client(n: usize, warm_url: &str) -> anyhow::Result<reqwest::Client> {
    let client = crate::servers::http_client_builder()
        .pool_max_idle_per_host(n)
        .timeout(Duration::from_secs(60))
        .build()?;
    let warm = futures::future::join_all((0..n).map(|_| client.get(warm_url).send())).await;
    let failed = warm.iter().filter(|r| r.is_err()).count();
    anyhow::ensure!(
        failed == 0,
        "{failed} of {n} warm-up requests to {warm_url} failed"
    );
    Ok(client)
}
