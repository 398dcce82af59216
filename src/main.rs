//! The `regauth` binary: parse the command line, hand over to the library, map errors to an
//! exit code.
#![forbid(unsafe_code)]

/// mimalloc instead of glibc malloc: the token path allocates a few dozen small, short-lived
/// buffers per request, and glibc's arena bookkeeping (`_int_malloc`, `malloc_consolidate`,
/// `unlink_chunk`) was ~10 % of the server's CPU under load (see `benches/RESULTS.md`).
/// Built with `no_thp`: with transparent huge pages mimalloc's arenas put ~40 MB of huge pages
/// in the RSS of an idle server.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    regauth::cli::main()
}
