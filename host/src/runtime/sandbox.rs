//! The state of one connector job and the limits it runs under.
//!
//! Every job gets a fresh `Store` with: a memory cap, a CPU budget counted in epoch ticks
//! spent running guest code plus the host work done for it (see [`CpuBudget`]), sinks for
//! large messages drawn from the host-wide [`SinkPool`], a capped log, a WASI context with
//! nothing in it (no preopened directories, no environment, no arguments, sockets denied,
//! stdin closed), and the network allow-list and credentials of the one account it serves.

use super::http::{HttpAccess, HttpHooks};
use super::output::CappedOutput;
use super::sink::SinkPool;
use crate::auth::Credentials;
use crate::net::policy::AllowList;
use crate::net::{Kept, NetPolicy, TlsPolicy};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// How often the engine's epoch advances; the unit of the CPU budget.
pub const TICK: Duration = Duration::from_millis(5);

/// The account a job serves: where it may connect and what the host logs in with.
pub struct JobAccount {
    /// Where a sync job's connector keeps its connections for the account's next jobs.
    pub keep: Option<KeepSlot>,
    pub allow: AllowList,
    pub credentials: Option<Credentials>,
    pub allow_insecure_certificate: bool,
    /// Answers the connector's `held` query (sync jobs only).
    pub held: Option<super::HeldLookup>,
    /// Answers the connector's `known` query (sync jobs only).
    pub known: Option<super::KnownLookup>,
    /// Answers the connector's `held-ids` query (sync jobs only).
    pub held_ids: Option<super::HeldIdsLookup>,
    /// What the job may reach over HTTP, and with which credentials.
    pub http: Arc<HttpAccess>,
    /// The provider's API base URL, as `provider.api-url` tells the connector.
    pub api_url: Option<String>,
}

/// The account's share of the kept connections.
pub struct KeepSlot {
    pub kept: Arc<Kept>,
    pub account: String,
}

pub struct JobState {
    pub table: ResourceTable,
    wasi: WasiCtx,
    pub memory: MemoryLimit,
    pub cpu: CpuBudget,
    pub connector_id: String,
    pub account: Option<JobAccount>,
    pub net: NetPolicy,
    pub tls: TlsPolicy,
    /// Bytes the job may still write to the log.
    pub log_budget: usize,
    /// The role of the server the connector last connected to, to name the failing stage
    /// when the guest itself fails.
    pub last_server: Option<String>,
    pub open_connections: usize,
    /// Where the job's body sinks keep what they hold.
    pub sinks: Arc<SinkPool>,
    /// The job's live body sinks.
    pub live_sinks: Arc<AtomicUsize>,
    /// Bytes one sink may keep in memory: the page size of the sync being run.
    pub sink_memory_share: u64,
    pub caps: OutputCaps,
    stdout: CappedOutput,
    stderr: CappedOutput,
    http_ctx: WasiHttpCtx,
    pub http: HttpHooks,
}

impl WasiView for JobState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for JobState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.http,
        }
    }
}

/// Settings a job's store is built from.
pub struct JobLimits {
    pub memory_bytes: usize,
    pub cpu_ticks: u64,
    pub log_bytes: usize,
    pub caps: OutputCaps,
}

/// Bounds on what a connector hands the host to store or serve (see `SandboxConfig`).
#[derive(Debug, Clone, Copy)]
pub struct OutputCaps {
    pub max_folders: usize,
    pub max_name_bytes: usize,
    pub max_state_bytes: usize,
    pub max_page_ids: usize,
    pub max_id_bytes: usize,
    pub max_reply_bytes: usize,
}

impl JobState {
    pub fn store(
        engine: &wasmtime::Engine,
        connector_id: &str,
        account: Option<JobAccount>,
        limits: &JobLimits,
        net: NetPolicy,
        tls: TlsPolicy,
        sinks: Arc<SinkPool>,
    ) -> Store<JobState> {
        let stdout = CappedOutput::new(limits.log_bytes);
        let stderr = CappedOutput::new(limits.log_bytes);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let http = HttpHooks(account.as_ref().map(|a| a.http.clone()));
        let state = JobState {
            table: ResourceTable::new(),
            wasi,
            memory: MemoryLimit {
                max_bytes: limits.memory_bytes,
                used_bytes: 0,
                table_elements: 0,
                exceeded: false,
            },
            cpu: CpuBudget {
                used_ticks: 0,
                budget_ticks: limits.cpu_ticks,
                carry: Duration::ZERO,
            },
            connector_id: connector_id.to_owned(),
            account,
            net,
            tls,
            log_budget: limits.log_bytes,
            last_server: None,
            open_connections: 0,
            sinks,
            live_sinks: Arc::new(AtomicUsize::new(0)),
            sink_memory_share: DEFAULT_SINK_SHARE,
            caps: limits.caps,
            stdout,
            stderr,
            http_ctx: WasiHttpCtx::new(),
            http,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.memory);
        // Trap at the first tick boundary, count it, and go on: waiting on host I/O passes
        // many ticks but costs a single count, so the budget measures time spent in guest code.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut context| {
            let cpu = &mut context.data_mut().cpu;
            cpu.used_ticks += 1;
            cpu.check()?;
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    /// Charges the host work done for a call the guest made since `started` to the CPU
    /// budget: a connector cannot have the host work for it past its budget.
    pub fn charge_since(&mut self, started: Instant) -> wasmtime::Result<()> {
        Ok(self.cpu.charge(started.elapsed())?)
    }

    /// Whatever the guest printed, for the log.
    pub fn take_output(&self) -> Option<String> {
        let mut text = String::new();
        for pipe in [&self.stdout, &self.stderr] {
            let bytes = pipe.contents();
            if !bytes.is_empty() {
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        (!text.trim().is_empty()).then_some(text)
    }
}

/// Table elements a job may hold, across all its tables.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// The memory cap, for all the linear memories of a job together (a component may hold
/// several core instances, each with its own memory). Growing past it traps with
/// [`MemoryLimitExceeded`].
pub struct MemoryLimit {
    max_bytes: usize,
    used_bytes: usize,
    table_elements: usize,
    pub exceeded: bool,
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .used_bytes
            .saturating_sub(current)
            .saturating_add(desired);
        if total > self.max_bytes {
            self.exceeded = true;
            return Err(MemoryLimitExceeded {
                limit: self.max_bytes,
            }
            .into());
        }
        self.used_bytes = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .table_elements
            .saturating_sub(current)
            .saturating_add(desired);
        if total > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
    }

    // A connector is one component: a handful of core instances, memories and tables.
    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

/// Bytes a body sink keeps in memory when no sync set the page size.
const DEFAULT_SINK_SHARE: u64 = 4 << 20;

/// The CPU budget of one step of a job — a connection test, one sync page, one outbox item:
/// guest code counted in epoch ticks, and host work done for the guest's calls (`held`,
/// `known`, body sinks) at its measured cost.
pub struct CpuBudget {
    pub used_ticks: u64,
    pub budget_ticks: u64,
    /// Host time charged but not yet a whole tick.
    carry: Duration,
}

impl CpuBudget {
    /// A new step begins with the whole budget.
    pub fn reset(&mut self) {
        self.used_ticks = 0;
        self.carry = Duration::ZERO;
    }

    /// Charges host work; fails once the budget is spent.
    pub fn charge(&mut self, spent: Duration) -> Result<(), CpuBudgetExceeded> {
        self.carry += spent;
        let ticks = self.carry.as_nanos() / TICK.as_nanos();
        self.carry -= TICK * ticks as u32;
        self.used_ticks += ticks as u64;
        self.check()
    }

    fn check(&self) -> Result<(), CpuBudgetExceeded> {
        if self.used_ticks > self.budget_ticks {
            return Err(CpuBudgetExceeded {
                budget: TICK * self.budget_ticks as u32,
            });
        }
        Ok(())
    }
}

/// The trap raised when a job has used its CPU budget.
#[derive(Debug)]
pub struct CpuBudgetExceeded {
    pub budget: Duration,
}

impl fmt::Display for CpuBudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the connector used more than its CPU budget of {:?}",
            self.budget
        )
    }
}

impl std::error::Error for CpuBudgetExceeded {}

/// The trap raised when a connector grows its memory past the cap.
#[derive(Debug)]
pub struct MemoryLimitExceeded {
    pub limit: usize,
}

impl fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the connector tried to use more than {} MiB of memory",
            self.limit >> 20
        )
    }
}

impl std::error::Error for MemoryLimitExceeded {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_work_is_charged_at_its_cost() {
        let mut cpu = CpuBudget {
            used_ticks: 0,
            budget_ticks: 600,
            carry: Duration::ZERO,
        };
        // 55 ms of host work per call: the 3 s budget is spent within 55 calls.
        let calls = (0..1000)
            .take_while(|_| cpu.charge(Duration::from_millis(55)).is_ok())
            .count();
        assert_eq!(calls, 54);
        cpu.reset();
        for _ in 0..4 {
            cpu.charge(Duration::from_millis(2)).unwrap();
        }
        assert_eq!(cpu.used_ticks, 1, "parts of a tick add up");
    }
}
