//! The settings' checks (every value in its range, settings that go
//! together set together) and what they derive: the cluster's TLS files
//! and addresses, the node's name, PostgreSQL's connection settings.

use std::path::Path;

use super::*;

/// Files of a node's TLS identity and the CA its peers' must chain to.
#[derive(Debug, Clone)]
pub struct TlsFiles<'a> {
    pub ca: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
    pub name: &'a str,
}

/// The inter-node listener's address as configured, and the address
/// advertised for it.
pub fn advertised(listen: std::net::SocketAddr, advertise: Option<&str>) -> Result<String, String> {
    match advertise {
        Some(a) if !a.trim().is_empty() => Ok(a.trim().to_owned()),
        _ if listen.ip().is_unspecified() => Err(format!(
            "cluster_addr {listen} listens on every interface: set cluster_advertise to the address other nodes reach"
        )),
        _ => Ok(listen.to_string()),
    }
}

/// A ScyllaDB consistency level by its name (`local_quorum`, …).
pub fn parse_consistency(name: &str) -> Option<::scylla::statement::Consistency> {
    use ::scylla::statement::Consistency;
    Some(match name.to_ascii_lowercase().as_str() {
        "any" => Consistency::Any,
        "one" => Consistency::One,
        "two" => Consistency::Two,
        "three" => Consistency::Three,
        "quorum" => Consistency::Quorum,
        "all" => Consistency::All,
        "local_quorum" => Consistency::LocalQuorum,
        "each_quorum" => Consistency::EachQuorum,
        "local_one" => Consistency::LocalOne,
        _ => return None,
    })
}

impl Settings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.addr.parse::<std::net::SocketAddr>().map_err(|_| {
            ConfigError(format!(
                "addr '{}' is not HOST:PORT (an IP address and a port)",
                self.addr
            ))
        })?;
        if let Some(s) = &self.jwt_secret {
            if s.len() < 32 {
                return Err(ConfigError("jwt_secret must be at least 32 bytes".into()));
            }
        }
        if !(0.0..=1.0).contains(&self.otlp_sample_ratio) {
            return Err(ConfigError("otlp_sample_ratio must be 0–1".into()));
        }
        if let Some(e) = &self.otlp_endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(ConfigError(format!(
                    "otlp_endpoint '{e}' is not an http:// or https:// URL"
                )));
            }
        }
        self.report_time_zone
            .parse::<ReportZone>()
            .map_err(|e| ConfigError(format!("report_time_zone: {e}")))?;
        if self.review_report_threshold == 0 {
            return Err(ConfigError(
                "review_report_threshold must be at least 1".into(),
            ));
        }
        if self.burst_queue_parts > MAX_QUEUE_PARTS {
            return Err(ConfigError(format!(
                "burst_queue_parts must be at most {MAX_QUEUE_PARTS}"
            )));
        }
        if self.admin_email.is_some() != self.admin_password.is_some() {
            return Err(ConfigError(
                "admin_email and admin_password must be set together".into(),
            ));
        }
        if self.actor_call_timeout_ms == 0
            || self.body_limit_bytes == 0
            || self.max_connections == 0
            || self.max_connections_per_ip == 0
            || self.request_timeout_secs == 0
        {
            return Err(ConfigError(
                "actor_call_timeout_ms, body_limit_bytes, max_connections, max_connections_per_ip and request_timeout_secs must be positive"
                    .into(),
            ));
        }
        if let Some(h) = &self.client_ip_header {
            axum::http::HeaderName::try_from(h.as_str())
                .map_err(|_| ConfigError(format!("client_ip_header '{h}' is not a header name")))?;
        }
        if self.metrics_token.as_ref().is_some_and(|t| t.len() < 32) {
            return Err(ConfigError(
                "metrics_token must be at least 32 characters".into(),
            ));
        }
        check_fee_table(&self.fee_table()).map_err(ConfigError)?;
        if let Some(p) = self
            .payment_providers
            .iter()
            .find(|p| !["cod", "sandbox", "payos"].contains(&p.as_str()))
        {
            return Err(ConfigError(format!(
                "payment_providers: unknown provider '{p}' (cod, sandbox, payos)"
            )));
        }
        if self.payment_providers.iter().any(|p| p == "payos") && self.payos_checksum_key.is_none()
        {
            return Err(ConfigError(
                "payment_providers lists payos but its credentials are not set".into(),
            ));
        }
        let payos = [
            &self.payos_client_id,
            &self.payos_api_key,
            &self.payos_checksum_key,
        ];
        if payos.iter().any(|v| v.is_some()) && !payos.iter().all(|v| v.is_some()) {
            return Err(ConfigError(
                "payos_client_id, payos_api_key and payos_checksum_key must be set together".into(),
            ));
        }
        if self.tax_rate_bps > 10_000 {
            return Err(ConfigError(
                "tax_rate_bps must be at most 10000 (100 %)".into(),
            ));
        }
        if self.timer_interval_ms == 0 || self.payment_timeout_secs == 0 {
            return Err(ConfigError(
                "timer_interval_ms and payment_timeout_secs must be positive".into(),
            ));
        }
        let positive = [
            self.dispatch_radius_km,
            self.geofence_radius_m,
            self.eta_default_speed_mps,
        ];
        if positive.iter().any(|v| !v.is_finite() || *v <= 0.0)
            || self.dispatch_offer_secs == 0
            || self.dispatch_retry_secs == 0
            || self.location_max_age_secs == 0
        {
            return Err(ConfigError(
                "dispatch_radius_km, geofence_radius_m, eta_default_speed_mps, dispatch_offer_secs, dispatch_retry_secs and location_max_age_secs must be positive".into(),
            ));
        }
        if !(10..=60_000).contains(&self.behavior_flush_ms) {
            return Err(ConfigError("behavior_flush_ms must be 10–60000".into()));
        }
        if !(10..=60_000).contains(&self.stats_interval_ms) {
            return Err(ConfigError("stats_interval_ms must be 10–60000".into()));
        }
        match self.media_store.as_str() {
            "disk" => {}
            "s3" if self.media_s3_bucket.is_some() => {}
            "s3" => return Err(ConfigError("media_store = s3 needs media_s3_bucket".into())),
            _ => return Err(ConfigError("media_store must be disk or s3".into())),
        }
        if !(1024..=256 << 20).contains(&self.media_max_bytes)
            || !(1..=400_000_000).contains(&self.media_max_pixels)
        {
            return Err(ConfigError(
                "media_max_bytes must be 1 KiB – 256 MiB and media_max_pixels 1 – 400000000".into(),
            ));
        }
        if !(60..=30 * 86_400).contains(&self.trending_half_life_secs) {
            return Err(ConfigError(
                "trending_half_life_secs must be 60–2592000 (one minute to 30 days)".into(),
            ));
        }
        self.validate_scylla()?;
        self.validate_postgres()?;
        self.validate_cluster()
    }

    fn validate_cluster(&self) -> Result<(), ConfigError> {
        if !self.cluster {
            return Ok(());
        }
        match self.store {
            StoreKind::Postgres => {}
            StoreKind::Scylla if self.scylla_lwt && !self.scylla_emulator => {}
            StoreKind::Scylla => {
                return Err(ConfigError(
                    "cluster mode on ScyllaDB needs scylla_lwt = true on a real cluster (leases and fenced appends are lightweight transactions; the emulator has none)".into(),
                ))
            }
            StoreKind::Embedded => {
                return Err(ConfigError(
                    "cluster mode needs a shared store that fences stale owners' appends (store = postgres or scylla); store = embedded is one process's file and cannot be shared".into(),
                ))
            }
        }
        if self.jwt_secret.is_none() {
            return Err(ConfigError(
                "cluster mode needs jwt_secret set, the same on every node".into(),
            ));
        }
        self.node_id()?;
        self.cluster_advertised()?;
        match &self.redis_url {
            None => {
                return Err(ConfigError(
                    "cluster mode needs redis_url (live events between nodes)".into(),
                ))
            }
            Some(url) => {
                fred::prelude::Config::from_url(url)
                    .map_err(|e| ConfigError(format!("redis_url: {e}")))?;
            }
        }
        self.cluster_tls_files()?;
        if !(1..=MAX_SHARDS).contains(&self.shards) {
            return Err(ConfigError(format!("shards must be 1–{MAX_SHARDS}")));
        }
        if self.lease_ttl_ms < 1_000 || self.lease_ttl_ms > 600_000 {
            return Err(ConfigError("lease_ttl_ms must be 1000–600000".into()));
        }
        if self.lease_renew_ms != 0 && self.lease_renew_ms * 2 > self.lease_ttl_ms {
            return Err(ConfigError(
                "lease_renew_ms must be at most half of lease_ttl_ms (leases are renewed well before they expire)".into(),
            ));
        }
        if self.media_store != "s3" && self.media_dir.is_none() {
            return Err(ConfigError(
                "cluster mode keeps images where every node reads them: media_store = \"s3\" (an S3-compatible bucket), or media_dir on a filesystem all nodes share; the default, data_dir/media, is one node's own".into(),
            ));
        }
        Ok(())
    }

    /// The inter-node channel's TLS files (`None`: plaintext, allowed for
    /// development): all three, or `cluster_plaintext` and none.
    pub fn cluster_tls_files(&self) -> Result<Option<TlsFiles<'_>>, ConfigError> {
        let files = (
            self.cluster_tls_ca.as_deref(),
            self.cluster_tls_cert.as_deref(),
            self.cluster_tls_key.as_deref(),
        );
        match (self.cluster_plaintext, files) {
            (false, (Some(ca), Some(cert), Some(key))) => {
                Ok(Some(TlsFiles {
                    ca,
                    cert,
                    key,
                    name: &self.cluster_tls_name,
                }))
            }
            (true, (None, None, None)) => Ok(None),
            (true, _) => Err(ConfigError(
                "cluster_plaintext = true and cluster_tls_* files are both set: choose one".into(),
            )),
            (false, _) => Err(ConfigError(
                "cluster mode needs cluster_tls_ca, cluster_tls_cert and cluster_tls_key (the inter-node channel is TLS; `surge cluster certs DIR` makes them), or cluster_plaintext = true for development".into(),
            )),
        }
    }

    /// This node's name: `node_id`, else `HOSTNAME`.
    pub fn node_id(&self) -> Result<String, ConfigError> {
        let name = match &self.node_id {
            Some(n) => n.clone(),
            None => std::env::var("HOSTNAME")
                .map_err(|_| ConfigError("cluster mode needs node_id (or HOSTNAME) set".into()))?,
        };
        // At most 50: the writer's sessions are named `surge-writer/{node}`
        // and PostgreSQL keeps 63 bytes of a session's name.
        let valid = !name.is_empty()
            && name.len() <= 50
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !valid {
            return Err(ConfigError(format!(
                "node_id '{name}' must be 1–50 of a-z, A-Z, 0-9, '-', '_', '.'"
            )));
        }
        Ok(name)
    }

    /// The inter-node listen address and the address advertised for it.
    pub fn cluster_advertised(&self) -> Result<(std::net::SocketAddr, String), ConfigError> {
        let listen: std::net::SocketAddr = self.cluster_addr.parse().map_err(|_| {
            ConfigError(format!(
                "cluster_addr '{}' is not HOST:PORT (an IP address and a port)",
                self.cluster_addr
            ))
        })?;
        let advertised =
            advertised(listen, self.cluster_advertise.as_deref()).map_err(ConfigError)?;
        Ok((listen, advertised))
    }

    /// How often leases are renewed.
    pub fn lease_renew(&self) -> std::time::Duration {
        std::time::Duration::from_millis(match self.lease_renew_ms {
            0 => self.lease_ttl_ms / 3,
            n => n,
        })
    }

    fn validate_postgres(&self) -> Result<(), ConfigError> {
        self.postgres_config()?;
        let schema = &self.postgres_schema;
        let valid = schema.len() <= 48
            && schema.starts_with(|c: char| c.is_ascii_lowercase())
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(ConfigError(format!(
                "postgres_schema '{schema}' must be 1-48 of a-z, 0-9 and _, starting with a letter"
            )));
        }
        if self.postgres_pool_size == 0 || self.postgres_pool_size > 1000 {
            return Err(ConfigError(
                "postgres_pool_size must be 1-1000 (connections for reads; the writer has two more)"
                    .into(),
            ));
        }
        if self.postgres_connect_timeout_ms == 0 || self.postgres_statement_timeout_ms == 0 {
            return Err(ConfigError(
                "postgres_connect_timeout_ms and postgres_statement_timeout_ms must be positive"
                    .into(),
            ));
        }
        Ok(())
    }

    /// `postgres_url` parsed, with the password from `postgres_password`
    /// or `PGPASSWORD` when the URL has none.
    pub(crate) fn postgres_config(&self) -> Result<tokio_postgres::Config, ConfigError> {
        let mut config: tokio_postgres::Config = self.postgres_url.parse().map_err(|e| {
            // The URL may hold a password: name the problem, not the URL.
            ConfigError(format!(
                "postgres_url is not a libpq URL or key=value string: {e}"
            ))
        })?;
        if config.get_hosts().is_empty() {
            return Err(ConfigError("postgres_url must name a host".into()));
        }
        if config.get_password().is_none() {
            let password = self
                .postgres_password
                .clone()
                .or_else(|| std::env::var("PGPASSWORD").ok());
            if let Some(p) = password {
                config.password(p);
            }
        }
        Ok(config)
    }

    fn validate_scylla(&self) -> Result<(), ConfigError> {
        if self.scylla_nodes.split(',').all(|n| n.trim().is_empty()) {
            return Err(ConfigError(
                "scylla_nodes must name at least one host:port".into(),
            ));
        }
        let ks = &self.scylla_keyspace;
        let valid_ks = ks.len() <= 48
            && ks.starts_with(|c: char| c.is_ascii_lowercase())
            && ks
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_ks {
            return Err(ConfigError(format!(
                "scylla_keyspace '{ks}' must be 1-48 of a-z, 0-9 and _, starting with a letter"
            )));
        }
        let r = self.scylla_replication.trim();
        if !(r.starts_with('{') && r.ends_with('}') && r.contains("'class'") && !r.contains(';')) {
            return Err(ConfigError(format!(
                "scylla_replication '{r}' must be a CQL map like {{'class': 'NetworkTopologyStrategy', 'dc1': 3}}"
            )));
        }
        if parse_consistency(&self.scylla_consistency).is_none() {
            return Err(ConfigError(format!(
                "scylla_consistency '{}' is not a consistency level (local_quorum, quorum, one, all, …)",
                self.scylla_consistency
            )));
        }
        if self.scylla_user.is_some() != self.scylla_password.is_some() {
            return Err(ConfigError(
                "scylla_user and scylla_password must be set together".into(),
            ));
        }
        if self.scylla_lwt && self.scylla_emulator {
            return Err(ConfigError(
                "scylla_lwt must be false with scylla_emulator: the emulator has no lightweight transactions".into(),
            ));
        }
        if self.scylla_request_timeout_ms == 0 {
            return Err(ConfigError(
                "scylla_request_timeout_ms must be positive".into(),
            ));
        }
        if self.store == StoreKind::Scylla && self.track_retention_secs >= SCYLLA_TRACK_TTL_SECS {
            return Err(ConfigError(format!(
                "track_retention_secs must be below {SCYLLA_TRACK_TTL_SECS} (the TTL of track_points on ScyllaDB)"
            )));
        }
        Ok(())
    }
}
