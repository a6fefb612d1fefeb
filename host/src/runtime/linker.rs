//! The linker every tool is instantiated with: WASI 0.2 filesystem, clocks,
//! random, stdio and environment, `wasi:http` (outgoing requests, every one
//! through the egress filter), plus the `boram:tool/host` interface.
//!
//! `wasi:sockets` is linked only so that components from language
//! toolchains load: CPython (`componentize-py`) and JavaScript (`jco`)
//! runtimes import all of WASI, sockets included. Every sandbox is built
//! with TCP, UDP and name lookup switched off and wasmtime's address check
//! denying every address ([`super::sandbox`]), so each socket operation
//! fails with `access-denied`. Filtered HTTP is the only way out.

use super::bindings;
use super::state::StoreState;
use wasmtime::Engine;
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, io, random, sockets};
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView as _};

struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

pub fn build_linker(engine: &Engine) -> wasmtime::Result<Linker<StoreState>> {
    type T = StoreState;
    let mut l = Linker::<T>::new(engine);
    io::error::add_to_linker::<T, HasIo>(&mut l, |t| t.ctx().table)?;
    io::poll::add_to_linker::<T, HasIo>(&mut l, |t| t.ctx().table)?;
    io::streams::add_to_linker::<T, HasIo>(&mut l, |t| t.ctx().table)?;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(&mut l, T::clocks)?;
    clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(&mut l, T::clocks)?;
    filesystem::types::add_to_linker::<T, WasiFilesystem>(&mut l, T::filesystem)?;
    filesystem::preopens::add_to_linker::<T, WasiFilesystem>(&mut l, T::filesystem)?;
    random::random::add_to_linker::<T, WasiRandom>(&mut l, |t| t.wasi.random())?;
    random::insecure::add_to_linker::<T, WasiRandom>(&mut l, |t| t.wasi.random())?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(&mut l, |t| t.wasi.random())?;
    cli::exit::add_to_linker::<T, WasiCli>(&mut l, T::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(&mut l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(&mut l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(&mut l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(&mut l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(&mut l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(&mut l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(&mut l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(&mut l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(&mut l, T::cli)?;
    sockets::tcp_create_socket::add_to_linker::<T, WasiSockets>(&mut l, T::sockets)?;
    sockets::udp_create_socket::add_to_linker::<T, WasiSockets>(&mut l, T::sockets)?;
    sockets::tcp::add_to_linker::<T, WasiSockets>(&mut l, T::sockets)?;
    sockets::udp::add_to_linker::<T, WasiSockets>(&mut l, T::sockets)?;
    sockets::instance_network::add_to_linker::<T, WasiSockets>(&mut l, T::sockets)?;
    sockets::network::add_to_linker::<T, WasiSockets>(&mut l, &Default::default(), T::sockets)?;
    sockets::ip_name_lookup::add_to_linker::<T, WasiSockets>(&mut l, T::sockets)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut l)?;
    bindings::add_host_to_linker(&mut l)?;
    Ok(l)
}
