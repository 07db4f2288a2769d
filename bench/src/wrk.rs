//! Driving a burst with `wrk` (an external load generator in C, Debian's
//! `wrk` package): the in-process client caps at about 40,000 requests a
//! second on this machine, below what the servers can do.
//!
//! The plan (one request per simulated client: path, bearer token, JSON
//! body) is written to a file that `BURST_LUA` reads. Each wrk thread takes
//! every t-th request; once a thread has reserved its share its
//! connections wait (`delay`) instead of sending more, and the thread stops at its last
//! answer, so every request of the plan is sent exactly once and wrk's
//! duration and latency cover exactly those requests. The script tallies
//! statuses and the `id` of every 201/202 answer (to be checked against the
//! store afterwards).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::load::{Burst, Latency};

/// One request of a burst.
pub struct Planned {
    pub path: String,
    pub token: Option<String>,
    pub body: Option<String>,
}

const BURST_LUA: &str = r#"
-- Requests from the plan file, one per line: path, token, body (tab-separated).
plan = {}
for line in io.lines(os.getenv("SURGE_BENCH_PLAN")) do
  local path, token, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
  plan[#plan + 1] = { path, token, body }
end
step = tonumber(os.getenv("SURGE_BENCH_THREADS"))

-- wrk measures its whole `-d`; a burst is timed here (monotonic, µs).
local ffi = require("ffi")
ffi.cdef[[
  typedef struct { long tv_sec; long tv_nsec; } surge_ts;
  int clock_gettime(int clk, surge_ts *tp);
]]
local ts = ffi.new("surge_ts")
function now_us()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

threads = {}
function setup(thread)
  thread:set("first", #threads + 1)
  table.insert(threads, thread)
end

-- This thread's requests, formatted once here: formatting in request()
-- costs the client CPU it shares with the server on a small machine.
function init(args)
  nxt, reserved, answered, mine, counts, ids = 1, 0, 0, 0, {}, {}
  reqs = {}
  for i = first, #plan, step do
    local r = plan[i]
    local headers = {}
    if r[2] ~= "" then headers["Authorization"] = "Bearer " .. r[2] end
    if r[3] ~= "" then
      headers["Content-Type"] = "application/json"
      reqs[#reqs + 1] = wrk.format("POST", r[1], headers, r[3])
    else
      reqs[#reqs + 1] = wrk.format("POST", r[1], headers)
    end
  end
  mine = #reqs
  plan = nil
  -- wrk calls the first thread's request() once before connecting, to
  -- count pipelined requests: that call must not use up a request.
  probe = first == 1
end

-- wrk asks delay() once before each request(), but a while before it:
-- a request is reserved here, and once this thread's share is, a
-- connection waits to be stopped instead.
function delay()
  if reserved >= mine then return 3600000 end
  reserved = reserved + 1
  return 0
end

function request()
  local r = reqs[nxt]
  if probe then probe = false else nxt = nxt + 1 end
  if started == nil then started = now_us() end
  return r
end

function response(status, headers, body)
  answered = answered + 1
  counts[status] = (counts[status] or 0) + 1
  if status == 201 or status == 202 then
    local id = body:match('"id":"([^"]+)"')
    if id then ids[#ids + 1] = status .. " " .. id end
  end
  if answered >= mine then
    finished = now_us()
    wrk.thread:stop()
    io.stderr:write("surge-bench thread-done\n")
    io.stderr:flush()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local first, last = nil, nil
  for _, t in ipairs(threads) do
    local s, f = t:get("started"), t:get("finished")
    if s and (first == nil or s < first) then first = s end
    if f and (last == nil or f > last) then last = f end
  end
  print(string.format("surge-bench duration_us %d", (last or now_us()) - (first or 0)))
  print("surge-bench errors " .. (e.connect + e.read + e.write + e.timeout))
  for _, q in ipairs({ 50, 99, 99.9 }) do
    print("surge-bench latency " .. q .. " " .. latency:percentile(q))
  end
  for _, t in ipairs(threads) do
    for s, n in pairs(t:get("counts")) do print("surge-bench status " .. s .. " " .. n) end
    for _, id in ipairs(t:get("ids")) do print("surge-bench id " .. id) end
  end
end
"#;

/// Sends every request of `plan` once to `base` with wrk (`threads`
/// threads, `connections` keep-alive connections), waiting at most `limit`.
pub async fn burst(
    base: &str,
    plan: &[Planned],
    threads: usize,
    connections: usize,
    limit: Duration,
) -> anyhow::Result<Burst> {
    ensure!(!plan.is_empty(), "an empty plan");
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("burst.lua");
    std::fs::write(&script, BURST_LUA)?;
    let plan_file = dir.path().join("plan.tsv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&plan_file)?);
    for p in plan {
        let field = |s: &Option<String>| s.clone().unwrap_or_default();
        ensure!(
            !format!("{}{}{}", p.path, field(&p.token), field(&p.body)).contains(['\t', '\n']),
            "plan fields may not hold tabs or newlines"
        );
        writeln!(f, "{}\t{}\t{}", p.path, field(&p.token), field(&p.body))?;
    }
    f.flush()?;
    drop(f);
    // Connections beyond a thread's share of the plan would only wait.
    let threads = threads.clamp(1, plan.len());
    let connections = connections.clamp(threads, plan.len());
    let mut child = tokio::process::Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", limit.as_secs().max(1)))
        .arg("--timeout")
        .arg(format!("{}s", limit.as_secs().max(1)))
        .arg("-s")
        .arg(&script)
        .arg(format!("{base}/"))
        .env("SURGE_BENCH_PLAN", &plan_file)
        .env("SURGE_BENCH_THREADS", threads.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("running wrk (apt-get install -y wrk)")?;
    // wrk sleeps its whole `-d` even when every thread has stopped; once
    // they all have, SIGINT ends the sleep and wrk reports at once.
    let pid = child.id().context("wrk's pid")?;
    // Its report can exceed a pipe's buffer: read it meanwhile.
    let mut stdout = child.stdout.take().context("stdout")?;
    let report = tokio::spawn(async move {
        let mut text = String::new();
        stdout.read_to_string(&mut text).await.map(|_| text)
    });
    let mut stderr = BufReader::new(child.stderr.take().context("stderr")?).lines();
    let mut errors = String::new();
    let mut done = 0;
    while let Some(line) = stderr.next_line().await? {
        if line == "surge-bench thread-done" {
            done += 1;
            if done == threads {
                // SAFETY: signals our own child, which has not been reaped.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
            }
        } else {
            errors.push_str(&line);
            errors.push('\n');
        }
    }
    let status = child.wait().await?;
    let report = report.await??;
    if !status.success() {
        bail!("wrk failed: {report}{errors}");
    }
    parse(&report, plan.len())
}

/// wrk's report as `done` prints it.
fn parse(stdout: &str, planned: usize) -> anyhow::Result<Burst> {
    let mut b = Burst {
        latency: Latency::Quantiles(Vec::new()),
        elapsed: Duration::ZERO,
        statuses: BTreeMap::new(),
        errors: 0,
        answers: Vec::new(),
    };
    let mut quantiles = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("surge-bench ") else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        match f.as_slice() {
            ["duration_us", us] => b.elapsed = Duration::from_micros(us.parse()?),
            ["errors", n] => b.errors = n.parse()?,
            ["latency", q, us] => quantiles.push((q.parse::<f64>()? / 100.0, us.parse::<f64>()?)),
            ["status", s, n] => *b.statuses.entry(s.parse()?).or_insert(0) += n.parse::<u64>()?,
            ["id", s, id] => b.answers.push((s.parse()?, Some((*id).to_owned()))),
            _ => bail!("unexpected wrk output: {line}"),
        }
    }
    ensure!(
        b.elapsed > Duration::ZERO,
        "wrk printed no report:\n{stdout}"
    );
    b.latency = Latency::Quantiles(quantiles);
    // Requests wrk did not see answered (its `-d` limit came first).
    let answered: u64 = b.statuses.values().sum();
    b.errors = b.errors.max((planned as u64).saturating_sub(answered));
    Ok(b)
}

/// `wrk -t1 -c{connections} -d{secs}s` on `url`: requests per second.
pub async fn rate(url: &str, connections: usize, secs: u64) -> anyhow::Result<f64> {
    let out = tokio::process::Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{secs}s")])
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .context("running wrk (apt-get install -y wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|r| r.trim().parse().ok())
        .with_context(|| format!("wrk's report has no rate: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_of_done_is_read_back() {
        let out = "Running 1s test\nsurge-bench duration_us 250000\nsurge-bench errors 0\n\
            surge-bench latency 50 1200\nsurge-bench latency 99 9000\nsurge-bench latency 99.9 9500\n\
            surge-bench status 201 2\nsurge-bench status 409 1\nsurge-bench id 201 abc\nsurge-bench id 201 def\n";
        let b = parse(out, 4).unwrap();
        assert_eq!(b.elapsed, Duration::from_millis(250));
        assert_eq!(b.statuses[&201], 2);
        assert_eq!(b.errors, 1, "one planned request never answered");
        assert_eq!(b.answers.len(), 2);
        assert!((b.ms(0.99) - 9.0).abs() < 1e-9);
        assert!((b.per_second() - 12.0).abs() < 1e-9);
    }
}
