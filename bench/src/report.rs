//! Reports: JSON (everything measured), Markdown (the table and the
//! targets) and an SVG bar chart, written side by side.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Value};

/// One row of a report: a target and its numbers.
pub struct Row {
    pub target: String,
    pub values: Vec<(&'static str, f64)>,
    pub notes: Vec<String>,
}

/// A target the scenario is held to, and whether it was met.
pub struct Goal {
    pub text: String,
    pub measured: String,
    pub met: bool,
}

pub struct Report {
    pub scenario: &'static str,
    pub command: String,
    pub rows: Vec<Row>,
    pub goals: Vec<Goal>,
    /// The value the chart shows (a key of `Row::values`).
    pub chart: &'static str,
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    let mem_kib = crate::servers::proc_number("/proc/meminfo", "MemTotal:").unwrap_or(0);
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu": cpu,
        "memory_gib": (mem_kib as f64 / 1_048_576.0 * 10.0).round() / 10.0,
        "os": std::env::consts::OS,
    })
}

impl Report {
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let m = machine();
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let mut o = serde_json::Map::new();
                o.insert("target".into(), json!(r.target));
                for (k, v) in &r.values {
                    o.insert((*k).into(), json!(v));
                }
                o.insert("notes".into(), json!(r.notes));
                Value::Object(o)
            })
            .collect();
        let goals: Vec<Value> = self
            .goals
            .iter()
            .map(|g| json!({"goal": g.text, "measured": g.measured, "met": g.met}))
            .collect();
        let doc = json!({"scenario": self.scenario, "at": at, "machine": m,
            "command": self.command, "rows": rows, "goals": goals});
        std::fs::write(
            dir.join(format!("{}.json", self.scenario)),
            serde_json::to_string_pretty(&doc)?,
        )?;

        let mut md = String::new();
        writeln!(md, "## {} — {at}\n", self.scenario)?;
        writeln!(
            md,
            "Machine: {} cores, {}, {} GiB. Command: `{}`\n",
            m["cores"], m["cpu"], m["memory_gib"], self.command
        )?;
        if let Some(first) = self.rows.first() {
            let keys: Vec<&str> = first.values.iter().map(|(k, _)| *k).collect();
            writeln!(md, "| target | {} | notes |", keys.join(" | "))?;
            writeln!(md, "|---|{}---|", "---:|".repeat(keys.len()))?;
            for r in &self.rows {
                let cells: Vec<String> = r.values.iter().map(|(_, v)| fmt(*v)).collect();
                writeln!(
                    md,
                    "| {} | {} | {} |",
                    r.target,
                    cells.join(" | "),
                    r.notes.join("; ")
                )?;
            }
        }
        if !self.goals.is_empty() {
            writeln!(md, "\n| goal | measured | met |\n|---|---|---|")?;
            for g in &self.goals {
                let met = if g.met { "yes" } else { "**no**" };
                writeln!(md, "| {} | {} | {met} |", g.text, g.measured)?;
            }
        }
        std::fs::write(dir.join(format!("{}.md", self.scenario)), md)?;
        std::fs::write(dir.join(format!("{}.svg", self.scenario)), self.svg())?;
        Ok(())
    }

    /// A horizontal bar chart of `chart` per target.
    fn svg(&self) -> String {
        let values: Vec<(String, f64)> = self
            .rows
            .iter()
            .map(|r| {
                let v = r
                    .values
                    .iter()
                    .find(|(k, _)| *k == self.chart)
                    .map_or(0.0, |(_, v)| *v);
                (r.target.clone(), v)
            })
            .collect();
        let max = values.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1e-9);
        let (label_w, bar_w, row_h) = (140.0, 420.0, 28.0);
        let height = 40.0 + row_h * values.len() as f64;
        let mut svg = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="13">
<text x="8" y="20" font-weight="bold">{title}: {chart}</text>
"#,
            w = label_w + bar_w + 110.0,
            title = self.scenario,
            chart = self.chart
        );
        for (i, (name, v)) in values.iter().enumerate() {
            let y = 32.0 + row_h * i as f64;
            let w = bar_w * v / max;
            let _ = writeln!(
                svg,
                r##"<text x="8" y="{ty}">{name}</text><rect x="{label_w}" y="{y}" width="{w:.1}" height="{h}" fill="{fill}"/><text x="{tx:.1}" y="{ty}">{val}</text>"##,
                ty = y + 16.0,
                h = row_h - 8.0,
                fill = if name == "surge" {
                    "#d9480f"
                } else {
                    "#868e96"
                },
                tx = label_w + w + 6.0,
                val = fmt(*v),
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if (v.fract() == 0.0 && v.abs() < 1e15) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

impl Row {
    /// A value by column name; `None` when absent or not applicable (NaN).
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .filter(|v| !v.is_nan())
    }
}
