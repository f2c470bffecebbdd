//! Plugin libraries loaded at run time: the example plugin (`memtable =
//! "example-btree"`) is built as a shared library, loaded through `[[load]]` and serves
//! a store; a library whose ABI fingerprint differs is refused, naming the mismatch,
//! without its entry point being called (the fixture aborts the process if it is).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use strata_core::Durability;
use strata_plugins::registry::AbiPart;
use strata_plugins::{PluginError, PluginKind, PluginSource, StackConfig};

/// `target/<profile>`: this test binary lives in `target/<profile>/deps/`, with the
/// default `target/` as with `CARGO_TARGET_DIR`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binaries live in <target>/<profile>/deps")
        .into()
}

/// Builds the plugin libraries once per test binary (a no-op when they are up to date)
/// into the target directory this test binary was built in, and returns that
/// directory.
fn libraries() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let profile = profile_dir();
        let target = profile.parent().expect("<target>/<profile> has a parent");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "strata-plugin-example"])
            .args(["-p", "strata-plugin-fixture-bad-abi"])
            .args(["-p", "strata-plugin-fixture-no-host-alloc"])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(target);
        match profile.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
            None => panic!("unexpected profile directory {}", profile.display()),
        }
        let out = cmd.output().expect("running cargo build must succeed");
        assert!(
            out.status.success(),
            "building the plugin libraries failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        profile
    })
}

fn library(name: &str) -> PathBuf {
    let path = libraries().join(format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

#[test]
fn the_example_plugin_loads_from_toml_and_serves_a_store() {
    let lib = library("strata_plugin_example");
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        "[[load]]\npath = {:?}\n\n[memtable]\nkind = \"example-btree\"\nscan_batch = 16\n\n\
         [engine]\nmemtable_size_bytes = 262144\ncompaction_threads = 1\n",
        lib.display().to_string()
    );
    let config = StackConfig::from_toml_str(&toml).expect("config parses");
    let db = config.builder(dir.path()).expect("builder").open().expect("open");
    assert_eq!(db.memtable_kind(), "example-btree");

    let listed = strata_plugins::plugins()
        .into_iter()
        .find(|p| p.kind == PluginKind::MemTable && p.name == "example-btree")
        .expect("the loaded plugin is listed");
    assert!(matches!(listed.source, PluginSource::Library(_)), "{listed:?}");

    for i in 0..5000u32 {
        db.put(format!("k{i:06}").as_bytes(), format!("v{i}").as_bytes(), Durability::Buffered)
            .expect("put");
    }
    db.delete(b"k000007", Durability::Sync).expect("delete");
    db.wait_for_background().expect("background work");
    assert!(db.stats().flushes >= 1, "5000 writes rotate 256 KiB memtables");
    assert_eq!(db.get(b"k004321").expect("get").as_deref(), Some(&b"v4321"[..]));
    assert_eq!(db.get(b"k000007").expect("get"), None);
    let scanned: Vec<_> =
        db.scan(&b"k000005"[..]..&b"k000010"[..]).map(|r| r.expect("scan").0).collect();
    assert_eq!(scanned.len(), 4, "k5, k6, k8, k9: {scanned:?}");
    drop(db);

    // Reopen: the WAL tail is replayed into the plugin's memtables.
    let db = config.builder(dir.path()).expect("builder").open().expect("reopen");
    assert_eq!(db.get(b"k004999").expect("get").as_deref(), Some(&b"v4999"[..]));
    assert_eq!(db.get(b"k000007").expect("get"), None);

    // Loading the same library again is a no-op; its options are still checked.
    strata_plugins::load_library(&lib).expect("second load");
    let bad =
        StackConfig::from_toml_str("[memtable]\nkind = \"example-btree\"\nscan_batch = \"x\"\n")
            .expect("parses")
            .builder(dir.path())
            .expect_err("ill-typed option");
    assert!(bad.to_string().starts_with("memtable.scan_batch: invalid type"), "{bad}");
}

#[test]
fn a_library_with_another_fingerprint_is_refused_uncalled() {
    let lib = library("strata_plugin_fixture_bad_abi");
    let e = strata_plugins::load_library(&lib).expect_err("a mismatched library must be refused");
    let PluginError::AbiMismatch { mismatch, .. } = &e else { panic!("{e:?}") };
    assert_eq!(mismatch.part, AbiPart::Fingerprint);
    assert!(mismatch.library.contains("deadbeef"), "{mismatch:?}");
    let text = e.to_string();
    assert!(
        text.contains("refusing plugin library") && text.contains("layout fingerprint"),
        "{text}"
    );
    // Still refused the second time (nothing was registered).
    assert!(matches!(strata_plugins::load_library(&lib), Err(PluginError::AbiMismatch { .. })));
}

#[test]
fn a_file_that_is_not_a_plugin_library_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("libfake.so");
    std::fs::write(&fake, b"not an ELF file").expect("write");
    let e = strata_plugins::load_library(&fake).expect_err("garbage must be refused");
    assert!(matches!(e, PluginError::Load { .. }), "{e:?}");
    assert!(e.to_string().contains("libfake.so"), "{e}");
}

#[test]
fn a_second_library_registering_a_taken_name_is_refused() {
    let lib = library("strata_plugin_example");
    strata_plugins::load_library(&lib).expect("the example loads (or already is)");
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("libstrata_plugin_example_copy.so");
    std::fs::copy(&lib, &copy).expect("copy the library");
    let e = strata_plugins::load_library(&copy).expect_err("the name is taken");
    let PluginError::Duplicate { kind, name, .. } = &e else { panic!("{e:?}") };
    assert_eq!((*kind, name.as_str()), (PluginKind::MemTable, "example-btree"));
    assert!(e.to_string().contains("registered twice"), "{e}");
    let listed = strata_plugins::plugin_names(PluginKind::MemTable);
    assert_eq!(listed.iter().filter(|n| **n == "example-btree").count(), 1, "{listed:?}");
}

#[test]
fn a_library_that_keeps_its_own_allocator_is_refused_saying_what_to_add() {
    let lib = library("strata_plugin_fixture_no_host_alloc");
    let e = strata_plugins::load_library(&lib).expect_err("must be refused");
    let PluginError::Load { reason, .. } = &e else { panic!("{e:?}") };
    assert!(reason.contains("strata_plugins::use_host_allocator!()"), "{reason}");
    assert!(
        !strata_plugins::plugins().iter().any(|p| p.name == "fixture-no-host-alloc"),
        "a refused library's plugins must not be registered"
    );
}
