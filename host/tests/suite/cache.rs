//! The compile cache: a second load comes from the cache; an entry the host
//! did not write (or a damaged one) is never loaded.

use super::tools_dir;
use boram_host::runtime::{ArtifactOrigin, CacheStats, Runtime, RuntimeOptions};

fn runtime_with_cache(dir: &std::path::Path) -> Runtime {
    Runtime::new(&RuntimeOptions {
        cache_dir: Some(dir.to_path_buf()),
        ..Default::default()
    })
    .expect("runtime")
}

#[tokio::test]
async fn the_second_load_comes_from_the_cache() {
    let cache = tempfile::tempdir().expect("tempdir");
    let wasm = tools_dir().join("text_stats.wasm");

    let first = runtime_with_cache(cache.path());
    assert_eq!(first.load(&wasm).await.expect("load").origin, ArtifactOrigin::Compiled);
    assert_eq!(
        first.cache_stats(),
        CacheStats {
            hits: 0,
            misses: 1,
            rejected: 0
        }
    );

    // A new runtime (as on the next start of `boram`) finds the entry.
    let second = runtime_with_cache(cache.path());
    let loaded = second.load(&wasm).await.expect("load");
    assert_eq!(loaded.origin, ArtifactOrigin::Cache);
    assert_eq!(
        second.cache_stats(),
        CacheStats {
            hits: 1,
            misses: 0,
            rejected: 0
        }
    );
    assert_eq!(loaded.specs[0].name, "text_stats", "the cached code still runs");
}

#[tokio::test]
async fn a_cache_entry_the_host_did_not_write_is_not_loaded() {
    let cache = tempfile::tempdir().expect("tempdir");
    let wasm = tools_dir().join("json_query.wasm");
    runtime_with_cache(cache.path()).load(&wasm).await.expect("load");
    let entry = std::fs::read_dir(cache.path())
        .expect("cache dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .expect("an entry was written");

    // Flip one byte of the artifact, as a tampering process or a bad disk would.
    let mut bytes = std::fs::read(&entry).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&entry, &bytes).expect("write");

    let runtime = runtime_with_cache(cache.path());
    let loaded = runtime.load(&wasm).await.expect("recompiles");
    assert_eq!(loaded.origin, ArtifactOrigin::Compiled);
    assert_eq!(
        runtime.cache_stats(),
        CacheStats {
            hits: 0,
            misses: 1,
            rejected: 1
        }
    );

    // A cache directory with a different key (another data directory) cannot vouch for it either.
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&entry, other.path().join(entry.file_name().expect("name"))).expect("copy");
    let stranger = runtime_with_cache(other.path());
    assert_eq!(
        stranger.load(&wasm).await.expect("load").origin,
        ArtifactOrigin::Compiled
    );
    assert_eq!(stranger.cache_stats().rejected, 1);
}
