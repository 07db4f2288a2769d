//! `surge-bench`: Surge's load scenarios, each measured beside its baselines
//! in the same invocation, on loopback only, bounded in count and time.
//! Reports go to `--out` as JSON, Markdown and SVG (see bench/README.md).

mod burst;
mod load;
mod report;
mod servers;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::ensure;
use clap::{Parser, Subcommand};

use report::{Goal, Report, Row};

#[derive(Parser)]
#[command(
    name = "surge-bench",
    about = "Surge's benchmarks, with baselines measured in the same run"
)]
struct Cli {
    /// Where reports are written
    #[arg(long, default_value = "bench/results", global = true)]
    out: PathBuf,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// N clients claim one unit each of a flash sale with capacity C, at once:
    /// Surge, raw axum, Redis + Lua, PostgreSQL.
    Burst {
        #[arg(long, default_value_t = 5_000)]
        clients: usize,
        #[arg(long, default_value_t = 100)]
        capacity: u32,
        /// Longest a burst may take before unanswered requests count as errors
        #[arg(long, default_value_t = 120)]
        time_limit_secs: u64,
        /// Targets to run (default: all)
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "surge,axum-noop,redis-lua,postgres"
        )]
        targets: Vec<String>,
    },
    /// Every scenario with a small N, checking its invariants (part of the
    /// test command, so the tool cannot rot).
    Smoke,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    match cli.scenario {
        Scenario::Burst {
            clients,
            capacity,
            time_limit_secs,
            targets,
        } => {
            let p = burst::Params {
                clients,
                capacity,
                time_limit: Duration::from_secs(time_limit_secs),
            };
            let report = run_burst(p, &targets, command).await?;
            report.write(&cli.out)?;
            println!("wrote {}/burst.{{md,json,svg}}", cli.out.display());
        }
        Scenario::Smoke => {
            let p = burst::Params {
                clients: 200,
                capacity: 20,
                time_limit: Duration::from_secs(60),
            };
            let all = ["surge", "axum-noop", "redis-lua", "postgres"].map(String::from);
            let report = run_burst(p, &all, command).await?;
            report.write(&cli.out.join("smoke"))?;
            for row in &report.rows {
                // NaN: not applicable to this target.
                let get = |k: &str| {
                    row.values
                        .iter()
                        .find(|(n, _)| *n == k)
                        .map_or(0.0, |(_, v)| if v.is_nan() { 0.0 } else { *v })
                };
                ensure!(get("errors") == 0.0, "{}: requests failed", row.target);
                ensure!(get("oversold") == 0.0, "{}: oversold", row.target);
                ensure!(
                    get("lost acks") == 0.0,
                    "{}: lost acknowledgements",
                    row.target
                );
                if row.target != "axum-noop" {
                    ensure!(
                        get("201") == 20.0,
                        "{}: {} of 20 units confirmed",
                        row.target,
                        get("201")
                    );
                }
            }
            println!(
                "smoke: every scenario ran; reports in {}/smoke",
                cli.out.display()
            );
        }
    }
    Ok(())
}

async fn run_burst(
    p: burst::Params,
    targets: &[String],
    command: String,
) -> anyhow::Result<Report> {
    let mut outcomes = Vec::new();
    for t in targets {
        let outcome = match t.as_str() {
            "surge" => burst::surge(p).await?,
            "axum-noop" => burst::axum_noop(p).await?,
            "redis-lua" => burst::redis_lua(p).await?,
            "postgres" => burst::postgres(p).await?,
            other => {
                anyhow::bail!("unknown target {other} (surge, axum-noop, redis-lua, postgres)")
            }
        };
        outcomes.push(outcome);
    }
    let rate = |name: &str| {
        outcomes
            .iter()
            .find(|o| o.target == name)
            .map(|o| o.burst.per_second())
    };
    let rows = outcomes
        .iter()
        .map(|o| {
            let b = &o.burst;
            let status = |s: u16| b.statuses.get(&s).copied().unwrap_or(0) as f64;
            let mut values = vec![
                ("clients", p.clients as f64),
                ("claims/s", b.per_second().round()),
                ("p50 ms", b.ms(0.5)),
                ("p99 ms", b.ms(0.99)),
                ("p999 ms", b.ms(0.999)),
                ("201", status(201)),
                ("202", status(202)),
                ("409", status(409)),
                (
                    "errors",
                    b.errors as f64
                        + b.statuses
                            .iter()
                            .filter(|(s, _)| ![201, 202, 409].contains(*s))
                            .map(|(_, n)| *n as f64)
                            .sum::<f64>(),
                ),
            ];
            if let Some(over) = o.oversold {
                values.push(("oversold", over as f64));
            }
            if let Some(lost) = o.lost {
                values.push(("lost acks", lost as f64));
            }
            let mut notes = Vec::new();
            if o.oversold.is_none() {
                notes.push("no stock kept: HTTP ceiling".into());
            }
            if o.target == "redis-lua" {
                notes.push("AOF fsync every second: an ack may be lost on a crash".into());
            }
            if o.target == "surge" {
                notes.push("no waitlist; reply after fsync; checked after a restart".into());
            }
            Row {
                target: o.target.to_owned(),
                values,
                notes,
            }
        })
        .collect::<Vec<_>>();
    // Every row has the same columns, in the same order.
    let rows = rows
        .into_iter()
        .map(|mut r| {
            for k in ["oversold", "lost acks"] {
                if !r.values.iter().any(|(n, _)| *n == k) {
                    r.values.push((k, f64::NAN));
                }
            }
            r
        })
        .collect();
    let mut goals = Vec::new();
    if let Some(s) = rate("surge") {
        for (base, factor) in [("axum-noop", 0.6), ("redis-lua", 1.5), ("postgres", 10.0)] {
            if let Some(b) = rate(base) {
                let ratio = s / b.max(1e-9);
                goals.push(Goal {
                    text: format!("claims/s ≥ {factor}× {base}"),
                    measured: format!("{ratio:.2}×"),
                    met: ratio >= factor,
                });
            }
        }
        let o = outcomes
            .iter()
            .find(|o| o.target == "surge")
            .expect("surge ran");
        goals.push(Goal {
            text: format!(
                "p99 ≤ 20 ms at {} concurrent clients (goal stated for 5,000)",
                p.clients
            ),
            measured: format!("{:.1} ms", o.burst.ms(0.99)),
            met: o.burst.ms(0.99) <= 20.0,
        });
        goals.push(Goal {
            text: "0 oversold, 0 lost acknowledgements".into(),
            measured: format!(
                "{} oversold, {} lost",
                o.oversold.unwrap_or(0),
                o.lost.unwrap_or(0)
            ),
            met: o.oversold == Some(0) && o.lost == Some(0),
        });
    }
    Ok(Report {
        scenario: "burst",
        command,
        rows,
        goals,
        chart: "claims/s",
    })
}
