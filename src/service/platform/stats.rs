//! Platform statistics: the worker that counts the facts entities record
//! (`stats_feed`, written in the same commit as the events they come from)
//! into hourly rows, exactly once, and the admin's reads over hours and
//! days. Each round's counts are published on `admin:stats`.
//!
//! Exactly once: a round's hour rows and the worker's cursor (checkpoint
//! and the fact keys applied inside the feed's overlap) are written in one
//! atomic `write_rows`, so a crash before it repeats the round and a crash
//! after it does not. One node runs the worker (the chores' node).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Duration as Span, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::stats::{hour_key, sum, top, Counters, Fact, Hour, Top};
use crate::domain::zone::ReportZone;
use crate::domain::{Caller, DomainError, Role};
use crate::live::{Bus, LiveEvent, StatsLive, Topic};
use crate::service::platform::feed::{Limits, Pruning, Tail};
use crate::service::ServiceError;
use crate::store::tables::{STATS, STATS_FEED};
use crate::store::{codec, IndexOp, Store};

const ROW_VERSION: u16 = 1;
/// A fact committed this long after it was dated is still counted.
const OVERLAP_MS: i64 = 10_000;
/// Facts kept in the feed (then pruned).
const RETENTION_MS: i64 = 2 * 24 * 3600 * 1000;
/// Hours one read may cover (31 days).
pub const MAX_HOURS: i64 = 31 * 24;
/// Days one read may cover.
pub const MAX_DAYS: i64 = 366;

/// Where the worker stands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Cursor {
    checkpoint: Option<i64>,
    seen: Vec<String>,
    /// Facts counted so far: the `admin:stats` sequence.
    applied: u64,
}

fn hour_row(key: &str) -> String {
    format!("h|{key}")
}

/// Hours or days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    #[default]
    Day,
    Hour,
}

/// One hour or day of a range.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsBucket {
    pub start: DateTime<Utc>,
    #[serde(flatten)]
    pub counters: Counters,
}

/// `GET /admin/stats`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub buckets: Vec<StatsBucket>,
    pub totals: Counters,
    pub top_products: Vec<Top>,
    pub top_shops: Vec<Top>,
    /// The facts counted so far (the `admin:stats` sequence).
    pub applied: u64,
}

pub struct Stats {
    store: Arc<dyn Store>,
    bus: Arc<Bus>,
    duty: crate::cluster::Duty,
    /// The zone days are counted in.
    zone: ReportZone,
    state: tokio::sync::Mutex<Option<(Tail, Cursor)>>,
}

fn start_of_hour(at: DateTime<Utc>) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(&format!("{}0000", hour_key(at)), "%Y%m%d%H%M%S")
        .expect("an hour key parses");
    Utc.from_utc_datetime(&naive)
}

impl Stats {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<Bus>,
        duty: crate::cluster::Duty,
        zone: ReportZone,
    ) -> Stats {
        Stats {
            store,
            bus,
            duty,
            zone,
            state: tokio::sync::Mutex::new(None),
        }
    }

    async fn cursor(&self) -> Result<Cursor, ServiceError> {
        Ok(
            crate::service::read_row(self.store.as_ref(), STATS, "cursor", ROW_VERSION)
                .await?
                .unwrap_or_default(),
        )
    }

    /// One round: the new facts counted into their hours, with the cursor,
    /// in one write; then today's counters published. Answers how many
    /// facts it counted.
    pub async fn round(&self) -> Result<usize, ServiceError> {
        let mut guard = self.state.lock().await;
        if guard.is_none() {
            let c = self.cursor().await?;
            *guard = Some((Tail::restored(c.checkpoint, c.seen.clone()), c));
        }
        let (tail, cursor) = guard.as_mut().expect("loaded");
        let limits = Limits {
            overlap_ms: OVERLAP_MS,
            rows: 5_000,
            read: 20_000,
        };
        let round = tail.read(self.store.as_ref(), STATS_FEED, limits).await?;
        let now = Utc::now().timestamp_millis();
        let checkpoint = tail.next_checkpoint(round.newest, now);
        let mut hours: BTreeMap<String, Hour> = BTreeMap::new();
        let mut applied = Vec::with_capacity(round.rows.len());
        for (key, value) in &round.rows {
            applied.push(key.clone());
            let Some(ms) = key
                .split_once('|')
                .and_then(|(ms, _)| ms.parse::<i64>().ok())
            else {
                continue;
            };
            let fact: Fact = match codec::decode(1, value) {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(%key, error = %e, "undecodable statistics fact skipped");
                    continue;
                }
            };
            let at = Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
            let h = hour_key(at);
            if !hours.contains_key(&h) {
                let stored: Option<Hour> = crate::service::read_row(
                    self.store.as_ref(),
                    STATS,
                    &hour_row(&h),
                    ROW_VERSION,
                )
                .await?;
                hours.insert(h.clone(), stored.unwrap_or_default());
            }
            hours.get_mut(&h).expect("loaded").apply(&fact);
        }
        let counted = applied.len();
        let mut next = Tail::restored(tail.checkpoint, tail.seen().cloned());
        next.advance(applied, checkpoint, OVERLAP_MS);
        let next_cursor = Cursor {
            checkpoint: next.checkpoint,
            seen: next.seen().cloned().collect(),
            applied: cursor.applied + counted as u64,
        };
        if counted > 0 || next_cursor.checkpoint != cursor.checkpoint {
            let mut ops: Vec<IndexOp> = hours
                .iter()
                .map(|(h, hour)| IndexOp::Put {
                    table: STATS,
                    key: hour_row(h),
                    value: codec::encode(ROW_VERSION, hour).expect("hours encode"),
                })
                .collect();
            ops.push(IndexOp::Put {
                table: STATS,
                key: "cursor".into(),
                value: codec::encode(ROW_VERSION, &next_cursor).expect("cursors encode"),
            });
            // Nothing counted unless this write happens: a failure leaves
            // the round to be done again.
            if let Err(e) = self.store.write_rows(ops).await {
                *guard = None;
                return Err(e.into());
            }
            *tail = next;
            *cursor = next_cursor;
        }
        let applied_total = cursor.applied;
        drop(guard);
        if counted > 0 {
            self.publish_today(applied_total).await?;
        }
        Ok(counted)
    }

    /// Today's counters on `admin:stats`.
    async fn publish_today(&self, seq: u64) -> Result<(), ServiceError> {
        let today = self.today().await?;
        self.bus.publish(&Topic::AdminStats, seq, today);
        Ok(())
    }

    /// Today's counters (the day in `report_time_zone`) as `admin:stats`
    /// carries them.
    pub async fn today(&self) -> Result<LiveEvent, ServiceError> {
        let now = Utc::now();
        let day = self.zone.day_of(now);
        let from = self.zone.start_of(day);
        let hours = self.hours(from, now + Span::hours(1)).await?;
        Ok(LiveEvent::Stats(StatsLive::Today {
            day: day.to_string(),
            counters: sum(hours.values()),
        }))
    }

    /// The `admin:stats` sequence: facts counted so far.
    pub async fn applied(&self) -> Result<u64, ServiceError> {
        Ok(self.cursor().await?.applied)
    }

    /// The stored hours starting in `[from, to)`, by hour key (`from` on
    /// an hour).
    async fn hours(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<BTreeMap<String, Hour>, ServiceError> {
        let (first, end) = (hour_row(&hour_key(from)), hour_row(&hour_key(to)));
        let mut out = BTreeMap::new();
        let ends_on_the_hour = start_of_hour(to) == to;
        // Just before the first hour's key (a prefix of it sorts first).
        let after = Some(first[..first.len() - 1].to_owned());
        crate::store::walk_rows(self.store.as_ref(), STATS, "h|", after, 500, |k, v| {
            if k < first {
                return Ok::<_, ServiceError>(true);
            }
            // Hours that start before `to`.
            if k > end || (k == end && ends_on_the_hour) {
                return Ok(false);
            }
            let h: Hour = codec::decode(ROW_VERSION, &v)?;
            out.insert(k[2..].to_owned(), h);
            Ok(true)
        })
        .await?;
        Ok(out)
    }

    /// `GET /admin/stats` (admins): the range `[from, to)` by hour or by
    /// day in `report_time_zone` (a day bucket starts at its local
    /// midnight), its totals and its top products and shops.
    pub async fn report(
        &self,
        caller: &Caller,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        granularity: Granularity,
        top_n: usize,
    ) -> Result<StatsReport, ServiceError> {
        if caller.role != Role::Admin {
            return Err(
                DomainError::Forbidden("only admins read platform statistics".into()).into(),
            );
        }
        crate::domain::window::check_period(Some(from), Some(to))?;
        let (max, what) = match granularity {
            Granularity::Hour => (MAX_HOURS, "hours"),
            Granularity::Day => (MAX_DAYS, "days"),
        };
        // The buckets' starts: hours, or the zone's local midnights (days
        // of 23 or 25 hours where the clocks change).
        let zone = self.zone;
        let next = |at: DateTime<Utc>| match granularity {
            Granularity::Hour => at + Span::hours(1),
            Granularity::Day => zone.start_of_next(zone.day_of(at)),
        };
        let from = match granularity {
            Granularity::Hour => start_of_hour(from),
            Granularity::Day => zone.start_of_day(from),
        };
        let mut starts = vec![from];
        let mut last = from;
        while starts.len() as i64 <= max {
            last = next(last);
            if last >= to {
                break;
            }
            starts.push(last);
        }
        if starts.len() as i64 > max {
            return Err(DomainError::invalid(
                "to",
                format!("a report covers at most {max} {what}"),
            )
            .into());
        }
        let hours = self.hours(from, to).await?;
        let mut by_bucket: HashMap<usize, Vec<&Hour>> = HashMap::new();
        for (key, h) in &hours {
            let Ok(naive) = NaiveDateTime::parse_from_str(&format!("{key}0000"), "%Y%m%d%H%M%S")
            else {
                continue;
            };
            let at = Utc.from_utc_datetime(&naive);
            let n = starts.partition_point(|s| *s <= at).saturating_sub(1);
            by_bucket.entry(n).or_default().push(h);
        }
        let buckets = starts
            .iter()
            .enumerate()
            .map(|(n, &start)| StatsBucket {
                start,
                counters: by_bucket
                    .get(&n)
                    .map(|hs| sum(hs.iter().copied()))
                    .unwrap_or_default(),
            })
            .collect();
        Ok(StatsReport {
            from,
            to,
            buckets,
            totals: sum(hours.values()),
            top_products: top(hours.values(), false, top_n),
            top_shops: top(hours.values(), true, top_n),
            applied: self.applied().await?,
        })
    }

    /// The worker: a round every `every` on the node that runs the
    /// cluster's chores, the feed pruned after two days.
    pub async fn run(
        self: Arc<Self>,
        every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut pruning = Pruning::new(STATS_FEED, RETENTION_MS);
        while crate::worker::next_round(every, None, &mut shutdown).await {
            if !self.duty.chores() {
                // Another node counts; start from the stored cursor when
                // this one takes over.
                *self.state.lock().await = None;
                continue;
            }
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "statistics: round failed");
            }
            pruning.when_due(self.store.as_ref(), &self.duty).await;
        }
    }
}
