//! The process's own figures, read from the kernel when asked: what `/metrics` exposes as
//! `process_resident_memory_bytes`, and what a server beside the API may report too (Redis's
//! `used_memory_rss`).

/// The process's resident set size in bytes: the resident pages of `/proc/self/statm` (its
/// second field) times the page size. `None` where there is no `/proc` (not Linux) or it
/// cannot be read.
///
/// ```
/// let rss = strata_admin::process::resident_memory_bytes();
/// if cfg!(target_os = "linux") {
///     assert!(rss.is_some_and(|bytes| bytes > 0));
/// }
/// ```
pub fn resident_memory_bytes() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        resident_bytes(&statm, page_size()?)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The page size the kernel counts `statm` in.
#[cfg(target_os = "linux")]
fn page_size() -> Option<u64> {
    // SAFETY: sysconf reads a system constant; it takes no pointer and has no precondition.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&size| size > 0)
}

/// The resident bytes of a `statm` line: its second field, in pages of `page` bytes.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn resident_bytes(statm: &str, page: u64) -> Option<u64> {
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_counts_resident_pages_in_its_second_field() {
        // size resident shared text lib data dt
        let statm = "52166 3386 2272 291 0 6338 0\n";
        assert_eq!(resident_bytes(statm, 4096), Some(3386 * 4096));
        assert_eq!(resident_bytes("52166", 4096), None);
        assert_eq!(resident_bytes("52166 lots", 4096), None);
        assert_eq!(resident_bytes("1 18446744073709551615", 4096), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_resident_memory() {
        let rss = resident_memory_bytes().expect("Linux has /proc/self/statm");
        assert!(rss > 1 << 20, "{rss}");
    }
}
