//! Admission of calls (issue 14): before a call gets an instance it takes
//! a place in its tool's queue (`concurrency` in the policy), one of the
//! pool's instance slots, and its memory limit out of the runtime's memory
//! budget. So a burst of calls waits its turn instead of committing more
//! memory than the machine has or failing on a full pool, and one tool
//! cannot take every slot.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Sum of the memory limits of the calls running at once, when not configured: 4 GiB.
pub const DEFAULT_MEMORY_BUDGET_MB: u64 = 4096;

/// The runtime-wide part: memory budget and instance slots.
#[derive(Debug)]
pub struct Admission {
    memory: Arc<Semaphore>,
    budget_mb: u64,
    slots: Arc<Semaphore>,
}

/// Held while a call runs; dropping it lets the next one in.
#[derive(Debug)]
pub struct Ticket {
    _tool: OwnedSemaphorePermit,
    _slot: OwnedSemaphorePermit,
    _memory: OwnedSemaphorePermit,
}

impl Admission {
    /// A budget of `budget_mb` MiB over `slots` instance slots.
    pub fn new(budget_mb: u64, slots: u32) -> Self {
        let budget_mb = budget_mb.clamp(1, u64::from(u32::MAX));
        Self {
            memory: Arc::new(Semaphore::new(budget_mb as usize)),
            budget_mb,
            slots: Arc::new(Semaphore::new(slots.max(1) as usize)),
        }
    }

    pub fn budget_mb(&self) -> u64 {
        self.budget_mb
    }

    /// Waits for a place in `tool_queue`, a slot, and `memory_bytes` of the
    /// budget (a limit above the whole budget takes all of it: that call runs alone).
    pub async fn admit(&self, tool_queue: &Arc<Semaphore>, memory_bytes: u64) -> Ticket {
        let mb = memory_bytes.div_ceil(1 << 20).clamp(1, self.budget_mb) as u32;
        // The semaphores are never closed, so acquiring cannot fail.
        let tool = tool_queue.clone().acquire_owned().await.expect("queue never closed");
        let slot = self.slots.clone().acquire_owned().await.expect("slots never closed");
        let memory = self
            .memory
            .clone()
            .acquire_many_owned(mb)
            .await
            .expect("budget never closed");
        Ticket {
            _tool: tool,
            _slot: slot,
            _memory: memory,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_past_the_memory_budget_wait_for_one_to_finish() {
        let admission = Admission::new(1024, 128);
        let queue = Arc::new(Semaphore::new(16));
        let first = admission.admit(&queue, 512 << 20).await;
        let _second = admission.admit(&queue, 512 << 20).await;
        let third = tokio::time::timeout(std::time::Duration::from_millis(50), admission.admit(&queue, 512 << 20));
        assert!(
            third.await.is_err(),
            "a third 512 MiB call must wait under a 1 GiB budget"
        );
        drop(first);
        let third = tokio::time::timeout(std::time::Duration::from_secs(5), admission.admit(&queue, 512 << 20));
        assert!(third.await.is_ok(), "it runs once one finishes");
        // A limit over the whole budget still runs, alone.
        let huge = Admission::new(100, 4);
        let _alone = huge.admit(&queue, 4096 << 20).await;
        assert_eq!(huge.memory.available_permits(), 0);
    }

    #[tokio::test]
    async fn the_tool_queue_bounds_one_tools_calls() {
        let admission = Admission::new(4096, 128);
        let queue = Arc::new(Semaphore::new(2));
        let _a = admission.admit(&queue, 1).await;
        let _b = admission.admit(&queue, 1).await;
        let c = tokio::time::timeout(std::time::Duration::from_millis(50), admission.admit(&queue, 1));
        assert!(c.await.is_err());
        assert_eq!(admission.slots.available_permits(), 126);
    }
}
