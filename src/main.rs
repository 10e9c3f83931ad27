//! The sfetl binary: parse arguments, run one command, exit with its code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tune_malloc();
    let cli = sfetl::cli::Cli::parse();
    sfetl::logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sfetl: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    ExitCode::from(runtime.block_on(sfetl::commands::run(cli)))
}

/// glibc's allocator set for a process that streams through a few threads: one arena, a
/// fixed 1 MiB threshold above which blocks are mapped on their own, and a heap top that is
/// given back to the kernel only past 8 MiB free and grown 2 MiB ahead.
///
/// By default every thread that allocates gets an arena of its own, each holding on to the
/// memory its thread freed (two tokio workers held 9 MB that way in a RECORD read, a fifth of
/// its peak RSS), and the mapping threshold grows with every large block freed, until 5 MB
/// Parquet column buffers are carved from the arenas and stay there. With one arena and the
/// threshold fixed, a RECORD read peaks 5 MB lower and an all-fields Parquet read 12 MB lower,
/// at no CPU cost measured (small blocks come from each thread's cache without the arena's
/// lock). With the mapping threshold fixed, glibc also fixes the trim threshold at 128 KiB:
/// the heap's top then shrank and grew again with every batch (263 `brk` calls in a 7-field
/// Parquet read of 1M rows), each new page faulted in and zeroed by the kernel. An 8 MiB trim
/// threshold and 2 MiB of padding halve the page faults (21,000 to 13,000 there; 73,000 to
/// 39,000 with all fields) and cut the read's system time by a fifth to a quarter, for 2-3 MB
/// more peak RSS. Left as they are when any `MALLOC_*` variable or `GLIBC_TUNABLES` is set:
/// the operator's choice wins.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if !std::env::vars_os().any(|(k, _)| {
        let k = k.to_string_lossy();
        k.starts_with("MALLOC_") || k == "GLIBC_TUNABLES"
    }) {
        // SAFETY: mallopt only sets the allocator's parameters; it is called before any other
        // thread exists, and every value is within glibc's documented ranges.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
            libc::mallopt(libc::M_TOP_PAD, 2 << 20);
        }
    }
}
