//! The state of one connector job and the limits it runs under.
//!
//! Every job gets a fresh `Store` with: a memory cap, a CPU budget counted in epoch ticks
//! spent running guest code, a capped log, a WASI context with nothing in it (no preopened
//! directories, no environment, no arguments, sockets denied, stdin closed), and the network
//! allow-list and credentials of the one account it serves.

use crate::auth::Credentials;
use crate::net::policy::AllowList;
use crate::net::{NetPolicy, TlsPolicy};
use std::fmt;
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// How often the engine's epoch advances; the unit of the CPU budget.
pub const TICK: Duration = Duration::from_millis(5);

/// The account a job serves: where it may connect and what the host logs in with.
pub struct JobAccount {
    pub allow: AllowList,
    pub credentials: Option<Credentials>,
    pub allow_insecure_certificate: bool,
    /// Answers the connector's `held` query (sync jobs only).
    pub held: Option<super::HeldLookup>,
    /// Answers the connector's `known` query (sync jobs only).
    pub known: Option<super::KnownLookup>,
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
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl WasiView for JobState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Settings a job's store is built from.
pub struct JobLimits {
    pub memory_bytes: usize,
    pub cpu_ticks: u64,
    pub log_bytes: usize,
}

impl JobState {
    pub fn store(
        engine: &wasmtime::Engine,
        connector_id: &str,
        account: Option<JobAccount>,
        limits: &JobLimits,
        net: NetPolicy,
        tls: TlsPolicy,
    ) -> Store<JobState> {
        let stdout = MemoryOutputPipe::new(limits.log_bytes);
        let stderr = MemoryOutputPipe::new(limits.log_bytes);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
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
            },
            connector_id: connector_id.to_owned(),
            account,
            net,
            tls,
            log_budget: limits.log_bytes,
            last_server: None,
            open_connections: 0,
            stdout,
            stderr,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.memory);
        // Trap at the first tick boundary, count it, and go on: waiting on host I/O passes
        // many ticks but costs a single count, so the budget measures time spent in guest code.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut context| {
            let cpu = &mut context.data_mut().cpu;
            cpu.used_ticks += 1;
            if cpu.used_ticks > cpu.budget_ticks {
                return Err(CpuBudgetExceeded {
                    budget: TICK * cpu.budget_ticks as u32,
                }
                .into());
            }
            Ok(UpdateDeadline::Yield(1))
        });
        store
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

pub struct CpuBudget {
    pub used_ticks: u64,
    pub budget_ticks: u64,
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
