//! Builds the eBPF probes (`tracer-ebpf`, target bpfel-unknown-none) with
//! aya-build and leaves the object at `$OUT_DIR/tracer-probes`, which
//! `src/probes/loader.rs` embeds.
//!
//! With `AYA_BUILD_SKIP=1` (e.g. `cargo check`/`clippy` on a machine without the
//! BPF toolchain) an empty object is written instead; the loader refuses it
//! with a message that says how to build the real one.
use std::{env, fs, path::PathBuf};

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out_dir.join("tracer-probes");
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    if skip {
        fs::write(&object, b"")?;
        return Ok(());
    }
    // `cargo xtask setup` installs bpf-linker under target/tools/bin; make a
    // plain `cargo build` find it too.
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let tools = manifest_dir.join("../target/tools/bin");
    if tools.join("bpf-linker").exists() {
        let path = env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![tools];
        paths.extend(env::split_paths(&path));
        // SAFETY: build scripts are single-threaded at this point.
        unsafe { env::set_var("PATH", env::join_paths(paths)?) };
    }
    let ebpf = manifest_dir.join("../tracer-ebpf");
    let root_dir = ebpf.to_str().expect("workspace path is UTF-8");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "tracer-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    )
}
