//! The host's integration tests: one binary, modules under `suite/`.
//! Guest components (first-party tools and the hostile fixtures) are built
//! once by `host/build.rs` before this binary compiles.

mod suite;
