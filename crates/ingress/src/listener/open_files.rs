//! The open-file limit, which bounds connections: every socket is a file descriptor, and a
//! process out of descriptors can accept no one (`accept: Too many open files`), not even a
//! health check. At start the soft limit is raised to the hard limit; the connection cap then
//! stays a reserve below it, for the log, the read models, PostgreSQL and Kafka.

use tracing::{info, warn};

/// Descriptors kept free for storage and clients of other services, at least.
const MIN_RESERVE: u64 = 64;

/// Raises this process's soft open-file limit to its hard limit (once, at start) and logs the
/// result. A refusal is logged and the current limit kept.
pub fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => info!(open_files = limit, "open-file limit"),
        Err(e) => warn!(error = %e, "could not raise the open-file limit; keeping the current one"),
    }
}

/// The most connections one listener may hold: `configured`, but never closer than a reserve
/// (an eighth of the limit, at least 64) to the process's current soft open-file limit.
pub fn connection_cap(configured: usize) -> usize {
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, _hard)) => cap_under(configured, soft),
        Err(_) => configured,
    }
}

fn cap_under(configured: usize, soft_limit: u64) -> usize {
    let reserve = (soft_limit / 8).max(MIN_RESERVE);
    let room = soft_limit.saturating_sub(reserve).max(1);
    configured.min(usize::try_from(room).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_keeps_a_reserve_below_the_open_file_limit() {
        assert_eq!(cap_under(4096, 1024), 896);
        assert_eq!(cap_under(4096, 1_048_576), 4096);
        assert_eq!(cap_under(100, 1024), 100);
        assert_eq!(cap_under(4096, 256), 192, "at least 64 kept free");
        assert_eq!(cap_under(4096, 10), 1, "a tiny limit still serves one connection");
    }
}
