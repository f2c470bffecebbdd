//! Derives the plugin ABI stamp (`strata_plugins::registry::AbiStamp`) from what was
//! built:
//!
//! - the compiler: a plugin library built by another rustc may lay out the shared
//!   types differently (`STRATA_RUSTC_VERSION`);
//! - the source text of every file defining a type or trait that crosses the library
//!   boundary — strata-core's (found through its `links` metadata `src_dir`) and this
//!   crate's registration types — hashed into `$OUT_DIR/abi_source.rs`, so that a
//!   change of a shared trait cannot ship without a new fingerprint. The hashing lives
//!   in `src/registry/fingerprint.rs`, where it is tested.

use std::path::PathBuf;
use std::process::Command;

#[allow(dead_code)]
#[path = "src/registry/fingerprint.rs"]
mod fingerprint;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(&rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "rustc (unknown version)".to_owned());
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=STRATA_RUSTC_VERSION={version} {target}");
    println!("cargo:rerun-if-env-changed=RUSTC");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/registry/fingerprint.rs");

    let Some(core_src) = std::env::var_os("DEP_STRATA_CORE_SRC_DIR").map(PathBuf::from) else {
        panic!("strata-core did not pass its source directory (links metadata `src_dir`)");
    };
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let Some(plugins_src) = manifest_dir.map(|d| d.join("src")) else {
        panic!("cargo did not set CARGO_MANIFEST_DIR");
    };
    for (_, path) in fingerprint::abi_files(&core_src, &plugins_src) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let hash = match fingerprint::hash_sources(&core_src, &plugins_src) {
        Ok(hash) => hash,
        Err(e) => panic!("{e}"),
    };
    let Some(out_dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        panic!("cargo did not set OUT_DIR");
    };
    let generated = format!(
        "/// Hash of the ABI source files (see `fingerprint::abi_files`), taken by build.rs.\n\
         pub const ABI_SOURCE_HASH: u64 = 0x{hash:016x};\n\
         /// strata-core's `src/` directory the hash was taken of.\n\
         #[cfg(test)]\n\
         pub const CORE_SRC_DIR: &str = {core:?};\n",
        core = core_src.display().to_string(),
    );
    if let Err(e) = std::fs::write(out_dir.join("abi_source.rs"), generated) {
        panic!("writing abi_source.rs: {e}");
    }
}
