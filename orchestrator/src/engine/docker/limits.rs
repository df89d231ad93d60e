//! Live resource limits on Docker (`docker update`) and their read-back
//! (inspect and a one-shot stats).

use bollard::models::ContainerUpdateBody;
use bollard::query_parameters::StatsOptionsBuilder;
use futures::StreamExt;

use super::{api, DockerEngine};
use crate::engine::{EngineError, Limit, ResourceStats};

/// The CFS period the CPU quota is a share of (100 ms, the kernel's default).
const CPU_PERIOD_US: i64 = 100_000;

/// The host's memory, in bytes: what "no limit" becomes, since Docker takes
/// no limit back once one was set.
fn host_memory() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<i64>().ok()
        })
        .map_or(i64::MAX / 2, |kb| kb * 1024)
}

impl DockerEngine {
    pub(super) async fn update(&self, name: &str, limit: Limit) -> Result<(), EngineError> {
        let body = match limit {
            Limit::Cpu(cores) => ContainerUpdateBody {
                cpu_period: Some(CPU_PERIOD_US),
                // -1: no quota.
                cpu_quota: Some(cores.map_or(-1, |c| (c * CPU_PERIOD_US as f64).round() as i64)),
                ..Default::default()
            },
            Limit::Memory(mib) => {
                let bytes = mib.map_or(host_memory(), |m| m as i64 * 1024 * 1024);
                ContainerUpdateBody {
                    memory: Some(bytes),
                    // Swap included in the limit; unlimited when lifted.
                    memory_swap: Some(if mib.is_some() { bytes } else { -1 }),
                    ..Default::default()
                }
            }
        };
        self.docker
            .update_container(name, body)
            .await
            .map_err(api(format!("updating the limits of {name}")))
    }

    pub(super) async fn stats(&self, name: &str) -> Result<ResourceStats, EngineError> {
        let inspect = self
            .docker
            .inspect_container(name, None)
            .await
            .map_err(api(format!("inspecting {name}")))?;
        let host = inspect.host_config.unwrap_or_default();
        let oom_killed = inspect.state.and_then(|s| s.oom_killed).unwrap_or(false);
        let opts = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let stats = self.docker.stats(name, Some(opts)).next().await;
        let throttling = stats
            .and_then(|s| s.ok())
            .and_then(|s| s.cpu_stats?.throttling_data)
            .unwrap_or_default();
        let quota = host.cpu_quota.filter(|q| *q > 0);
        let period = host.cpu_period.filter(|p| *p > 0).unwrap_or(CPU_PERIOD_US);
        let memory = host.memory.filter(|m| *m > 0 && *m < host_memory());
        Ok(ResourceStats {
            throttled_periods: throttling.throttled_periods.unwrap_or(0),
            throttled_secs: throttling.throttled_time.unwrap_or(0) as f64 / 1e9,
            cpu_cores: quota.map(|q| q as f64 / period as f64),
            memory_mib: memory.map(|m| (m / (1024 * 1024)) as u64),
            oom_killed,
        })
    }
}
