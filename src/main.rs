//! The `regauth` binary: parse the command line, hand over to the library, map errors to an
//! exit code.
// No unsafe code but the one call that sets an allocator option (`allocator_options`).
#![deny(unsafe_code)]

/// mimalloc instead of glibc malloc: the token path allocates a few dozen small, short-lived
/// buffers per request, and glibc's arena bookkeeping (`_int_malloc`, `malloc_consolidate`,
/// `unlink_chunk`) was ~10 % of the server's CPU under load (see `benches/RESULTS.md`).
/// Built with `no_thp`: with transparent huge pages mimalloc's arenas put ~40 MB of huge pages
/// in the RSS of an idle server.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    allocator_options();
    regauth::cli::main()
}

/// mimalloc's option `purge_delay` (its number in both of its major versions' option enum).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc's `purge_delay` (the option `MIMALLOC_PURGE_DELAY`, in its option enum at 15 in
/// both of its major versions) from 10 ms to 0: memory freed in a burst goes back to the
/// system at once instead of staying committed. At 1 000 000 tokens the last-use writer's
/// burst every minute left ~18 MB more RSS with the default, for under 1 % of the token
/// endpoint's CPU (benches/RESULTS.md). An operator's `MIMALLOC_PURGE_DELAY` wins.
fn allocator_options() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option of the allocator, before any thread is started;
        // mimalloc reads options with atomic loads.
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    /// The binary's allocator purges freed memory at once, unless the operator's
    /// `MIMALLOC_PURGE_DELAY` says otherwise (then that value stands).
    #[test]
    fn mimalloc_purges_at_once_unless_the_operator_says_otherwise() {
        super::allocator_options();
        // SAFETY: reads one integer option of the allocator.
        #[allow(unsafe_code)]
        let delay = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        let expected = std::env::var("MIMALLOC_PURGE_DELAY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert_eq!(delay, expected);
    }
}
