//! Host-side bindings of the `boram:tool` world (see `wit/tool.wit`).
//! Exports are async so calls can be interrupted at epoch yields; the host
//! interface (log, progress) is synchronous and cheap.

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "boram:tool/tool",
        exports: { default: async },
    });
}

pub use generated::ToolPre;
pub use generated::boram::tool::host::{Host as HostImports, Level};
pub use generated::boram::tool::types::{ToolError as WitToolError, ToolSpec as WitToolSpec};

/// Adds the `boram:tool/host` interface to a linker whose store data implements it.
pub fn add_host_to_linker<T: HostImports + Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    generated::boram::tool::host::add_to_linker::<T, wasmtime::component::HasSelf<T>>(linker, |t| t)
}
