//! What an operator's Prometheus scrapes from `GET /metrics` (docs/api.md, "Metrics"), in
//! the OpenMetrics text format Prometheus reads: counters and histograms kept as things
//! happen, and gauges read from the store when scraped. One set per server, shared by the API, the scheduler, the runtime
//! and the webhook deliverer.

use crate::store::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::time::Duration;

/// The media type of the text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectorLabel {
    pub connector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabels {
    pub connector: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub connector: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub connector: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds, from 5 ms to about 80 s.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    accounts: Family<AccountLabels, Gauge>,
    sync_jobs: Family<JobLabels, Counter>,
    sync_job_seconds: Histograms<ConnectorLabel>,
    messages_ingested: Family<ConnectorLabel, Counter>,
    fetched_bytes: Family<ConnectorLabel, Counter>,
    sync_gap_messages: Family<ConnectorLabel, Gauge>,
    sync_gap_refetches: Family<ConnectorLabel, Counter>,
    outbox_depth: Gauge,
    sends: Family<ResultLabel, Counter>,
    webhook_deliveries: Family<ResultLabel, Counter>,
    webhook_backlog: Gauge,
    connector_failures: Family<FailureLabels, Counter>,
    api_requests: Family<RequestLabels, Counter>,
    api_seconds: Histograms<RouteLabels>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut metrics = Self {
            registry: Registry::with_prefix("mailroom"),
            accounts: Family::default(),
            sync_jobs: Family::default(),
            sync_job_seconds: Family::new_with_constructor(seconds),
            messages_ingested: Family::default(),
            fetched_bytes: Family::default(),
            sync_gap_messages: Family::default(),
            sync_gap_refetches: Family::default(),
            outbox_depth: Gauge::default(),
            sends: Family::default(),
            webhook_deliveries: Family::default(),
            webhook_backlog: Gauge::default(),
            connector_failures: Family::default(),
            api_requests: Family::default(),
            api_seconds: Family::new_with_constructor(seconds),
        };
        let registry = &mut metrics.registry;
        registry.register(
            "accounts",
            "Accounts by connector and state",
            metrics.accounts.clone(),
        );
        registry.register(
            "sync_jobs",
            "Sync jobs by connector and result (ok, failed, stopped)",
            metrics.sync_jobs.clone(),
        );
        registry.register(
            "sync_job_duration_seconds",
            "How long sync jobs took",
            metrics.sync_job_seconds.clone(),
        );
        registry.register(
            "messages_ingested",
            "Messages taken in by sync jobs",
            metrics.messages_ingested.clone(),
        );
        registry.register(
            "fetched_bytes",
            "Bytes of messages fetched by sync jobs",
            metrics.fetched_bytes.clone(),
        );
        registry.register(
            "sync_gap_messages",
            "Messages the server counts in the folders with a standing gap that Mailroom does not hold",
            metrics.sync_gap_messages.clone(),
        );
        registry.register(
            "sync_gap_refetches",
            "Folders fetched again because they differed from the server's count",
            metrics.sync_gap_refetches.clone(),
        );
        registry.register(
            "outbox_depth",
            "Changes and sends queued for the servers",
            metrics.outbox_depth.clone(),
        );
        registry.register(
            "sends",
            "Messages sent, by result (sent, failed, retry)",
            metrics.sends.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts by result (delivered, retry, failed, gone)",
            metrics.webhook_deliveries.clone(),
        );
        registry.register(
            "webhook_backlog",
            "Webhook deliveries waiting to be delivered",
            metrics.webhook_backlog.clone(),
        );
        registry.register(
            "connector_failures",
            "Connector jobs stopped by the sandbox or failing on their own, by kind (cpu_budget, memory, trap, denied, timeout)",
            metrics.connector_failures.clone(),
        );
        registry.register(
            "api_requests",
            "API requests by method, route and status",
            metrics.api_requests.clone(),
        );
        registry.register(
            "api_request_duration_seconds",
            "How long API requests took, by method and route",
            metrics.api_seconds.clone(),
        );
        metrics
    }

    /// A sync job ended with `result` after `took`.
    pub fn sync_job(&self, connector: &str, result: &str, took: Duration) {
        self.sync_jobs
            .get_or_create(&JobLabels {
                connector: connector.to_owned(),
                result: result.to_owned(),
            })
            .inc();
        self.sync_job_seconds
            .get_or_create(&ConnectorLabel {
                connector: connector.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// A sync job took in `messages` of `bytes` in all.
    pub fn ingested(&self, connector: &str, messages: u64, bytes: u64) {
        let label = ConnectorLabel {
            connector: connector.to_owned(),
        };
        self.messages_ingested
            .get_or_create(&label)
            .inc_by(messages);
        self.fetched_bytes.get_or_create(&label).inc_by(bytes);
    }

    /// A sync job fetched `folders` folders again for a gap.
    pub fn gap_refetched(&self, connector: &str, folders: u64) {
        self.sync_gap_refetches
            .get_or_create(&ConnectorLabel {
                connector: connector.to_owned(),
            })
            .inc_by(folders);
    }

    /// A send ended (`sent`, `failed`) or waits for another try (`retry`).
    pub fn send(&self, result: &str) {
        self.sends
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    /// A webhook delivery attempt ended with `result`.
    pub fn webhook_delivery(&self, result: &str) {
        self.webhook_deliveries
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    /// A connector job stopped by the sandbox or failing by itself.
    pub fn connector_failure(&self, connector: &str, kind: &str) {
        self.connector_failures
            .get_or_create(&FailureLabels {
                connector: connector.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// An API request to `route` (its template, never the ids in the path) was answered.
    pub fn api_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.api_requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status: status.to_string(),
            })
            .inc();
        self.api_seconds
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// The text exposition, with the gauges read from `store` now.
    pub async fn render(&self, store: &dyn Store) -> crate::store::Result<String> {
        let mut counts: HashMap<AccountLabels, i64> = HashMap::new();
        let mut gaps: HashMap<String, i64> = HashMap::new();
        for account in store.accounts().await? {
            let gap = gaps.entry(account.connector.clone()).or_default();
            for folder in &account.folders {
                if let Some(server) = folder.server_total {
                    let held = store.folder_total(&account.id, &folder.id).await?;
                    *gap += server.saturating_sub(held) as i64;
                }
            }
            let state = serde_json::to_value(account.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            *counts
                .entry(AccountLabels {
                    connector: account.connector,
                    state,
                })
                .or_default() += 1;
        }
        self.accounts.clear();
        for (labels, count) in counts {
            self.accounts.get_or_create(&labels).set(count);
        }
        for (connector, gap) in gaps {
            self.sync_gap_messages
                .get_or_create(&ConnectorLabel { connector })
                .set(gap);
        }
        self.outbox_depth.set(store.queued_duties().await? as i64);
        self.webhook_backlog
            .set(store.pending_deliveries().await? as i64);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|e| crate::store::StoreError::Backend(format!("encoding metrics: {e}")))?;
        Ok(text)
    }
}
