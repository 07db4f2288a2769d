//! `docs/configuration.md`, written from the settings' own doc comments and
//! defaults (`surge config reference`; a test fails when the file drifts).
//!
//! A field's doc comment is its meaning. A paragraph of it that starts
//! with `Default:` names a default that is computed at start (the CPU
//! count, a generated secret, another setting); every other default is
//! `Settings::default()` itself.

use serde_json::Value;

use super::{Settings, KEYS};

const HEAD: &str = "# Configuration

<!-- Written by `surge config reference` from the doc comments of
`Settings` (src/config/mod.rs); edit those, not this file. A test fails
when the two differ; `SURGE_BLESS_DOCS=1` rewrites it. -->

Every setting comes from, in order of precedence: a command-line flag (only
`--addr`, `--data-dir`, `--store`, `--scylla-nodes` and `--postgres-url`
have one), the environment (`SURGE_` + the key in upper case), a TOML file
given with `--config FILE` (or `SURGE_CONFIG`), or the default. Unknown
keys in the file are an error, and so is a value out of its range: Surge
refuses to start and names the key.

Fees and prices are minor units of the order's currency; one checkout is
in one currency.

| key | default | meaning |
|---|---|---|
";

const TAIL: &str = "
Example `surge.toml`:

```toml
addr = \"0.0.0.0:8080\"
data_dir = \"/var/lib/surge\"
snapshot_every = 200
log_format = \"json\"
report_time_zone = \"Asia/Ho_Chi_Minh\"
```
";

/// The configuration reference as Markdown: one row per key, in the
/// order of the settings struct.
pub fn reference() -> String {
    let schema = schemars::schema_for!(Settings);
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .expect("the settings' schema has properties");
    let defaults = serde_json::to_value(Settings::default()).expect("settings serialize");
    let mut keys: Vec<&str> = properties.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut listed = KEYS.to_vec();
    listed.sort_unstable();
    assert_eq!(keys, listed, "config::KEYS lists every field of Settings");

    let mut out = String::from(HEAD);
    for key in KEYS {
        let description = properties[*key]
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("setting `{key}` has no doc comment"));
        let (meaning, computed) = split_default(description);
        let default = computed.unwrap_or_else(|| shown(&defaults[*key]));
        out.push_str(&format!(
            "| `{key}` | {} | {} |\n",
            cell(&default),
            cell(&meaning)
        ));
    }
    out.push_str(TAIL);
    out
}

/// The meaning (paragraphs joined) and a `Default:` paragraph's text.
fn split_default(description: &str) -> (String, Option<String>) {
    let mut meaning = Vec::new();
    let mut computed = None;
    for paragraph in description.split("\n\n") {
        let line = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
        match line.strip_prefix("Default: ") {
            Some(rest) => computed = Some(rest.trim_end_matches('.').to_owned()),
            None => meaning.push(line),
        }
    }
    (meaning.join(" "), computed)
}

fn shown(value: &Value) -> String {
    match value {
        Value::Null => "unset".into(),
        Value::String(s) if s.is_empty() => "empty".into(),
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

/// A table cell: one line, no bare `|`.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_paragraph_names_a_computed_default() {
        let (meaning, computed) =
            split_default("Argon2id hashes at once,\ncomputed in parallel.\n\nDefault: CPU count.");
        assert_eq!(meaning, "Argon2id hashes at once, computed in parallel.");
        assert_eq!(computed.as_deref(), Some("CPU count"));
        assert_eq!(split_default("A | B").1, None);
        assert_eq!(cell("A | B"), "A \\| B");
        assert_eq!(shown(&Value::Null), "unset");
        assert_eq!(shown(&serde_json::json!([[1000, 0]])), "`[[1000,0]]`");
    }

    #[test]
    fn every_setting_has_a_row() {
        let text = reference();
        for key in KEYS {
            assert!(text.contains(&format!("| `{key}` |")), "{key}");
        }
    }
}
