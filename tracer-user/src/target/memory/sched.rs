//! The scheduler's goroutine-id generator, `runtime.sched.goidgen`: counts
//! goroutine creations without a probe.

use super::{Memory, SnapshotError};

/// Reads `runtime.sched.goidgen` of a running target: the last goroutine id
/// taken from the generator. `sched_addr` is the runtime address of
/// `runtime.sched` (its link-time address from
/// [`crate::target::RuntimeVars::sched`] plus the load bias) and
/// `goidgen_offset` is [`crate::target::RuntimeOffsets::schedt_goidgen`].
///
/// Ps take ids in batches of
/// [`GOID_CACHE_BATCH`](crate::target::GOID_CACHE_BATCH) (16): every goid
/// ever assigned is ≤ `goidgen`, and up to 16 per P are taken but not yet
/// assigned. Between two reads, `goidgen` grows by the number of goroutines
/// created, to within 16 per P.
pub fn read_goidgen(
    mem: &dyn Memory,
    sched_addr: u64,
    goidgen_offset: u64,
) -> Result<u64, SnapshotError> {
    let addr = sched_addr
        .checked_add(goidgen_offset)
        .ok_or_else(|| SnapshotError::BadLayout {
            reason: format!(
                "runtime.sched at {sched_addr:#x} + goidgen offset {goidgen_offset} overflows"
            ),
        })?;
    mem.read_u64(addr).map_err(|source| SnapshotError::Read {
        what: "runtime.sched.goidgen",
        addr,
        source,
    })
}
