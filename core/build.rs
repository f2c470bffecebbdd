//! Hands strata-plugins this crate's source directory (links metadata `src_dir`, read
//! there as `DEP_STRATA_CORE_SRC_DIR`): its build script hashes the files that define
//! the traits and types crossing the plugin library boundary into the ABI stamp.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_owned());
    let src = std::path::Path::new(&dir).join("src");
    println!("cargo::metadata=src_dir={}", src.display());
    println!("cargo::rerun-if-changed=build.rs");
}
