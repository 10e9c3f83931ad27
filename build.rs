//! Link options of the `sfetl` binary.

fn main() {
    let linux_gnu = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if linux_gnu {
        // Relative relocations packed (DT_RELR, glibc 2.36+, binutils 2.38+): unpacked, the
        // loader read 6 MB of relocation entries at every start, which stayed resident, a
        // fifth of a RECORD read's peak RSS.
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    hot_text(linux_gnu);
    println!("cargo:rerun-if-changed=build.rs");
}

/// A build environment variable, empty when unset.
fn var(key: &str) -> String {
    std::env::var(key).unwrap_or_default()
}

/// Release builds place the functions a read runs (`link/hot-text.txt`, written by
/// `scripts/hot_text.py`) first and together in the text segment. The kernel maps the 64 KB
/// around each page fault in a binary's code, and the read's 3 MB of functions spread through
/// a 100 MB segment held 20 MB of it resident; placed together they hold about their own size.
///
/// `--symbol-ordering-file` is lld's, the linker rustc uses on x86_64 Linux (GNU ld would reject
/// it), so it is passed only there, when no other linker is configured, and not with
/// `SFETL_HOT_TEXT=0`. Names the file holds that a build lacks are skipped silently: a stale
/// list places fewer functions, it never fails a link.
///
/// The linker is given a copy in this build script's `OUT_DIR`, not the checkout's file: Cargo
/// keeps a build script's output for any checkout of the same package sharing a target dir
/// (CI's `$HOME/.cache/sfetl-target`), so a path into one checkout failed the release links of
/// every other once that checkout was removed; the copy lives as long as the target dir.
fn hot_text(linux_gnu: bool) {
    println!("cargo:rerun-if-changed=link/hot-text.txt");
    println!("cargo:rerun-if-env-changed=SFETL_HOT_TEXT");
    let lld_by_default = linux_gnu && var("CARGO_CFG_TARGET_ARCH") == "x86_64";
    let other_linker =
        !var("RUSTC_LINKER").is_empty() || var("CARGO_ENCODED_RUSTFLAGS").contains("linker");
    let list = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("link/hot-text.txt");
    if var("PROFILE") != "release"
        || !lld_by_default
        || other_linker
        || var("SFETL_HOT_TEXT") == "0"
        || !list.is_file()
    {
        return;
    }
    let copy = std::path::Path::new(&var("OUT_DIR")).join("hot-text.txt");
    if std::fs::copy(&list, &copy).is_err() {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        copy.display()
    );
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}
