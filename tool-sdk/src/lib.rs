//! The BoramClaw tool SDK: write a sandboxed tool as a plain Rust function.
//!
//! A tool is a function from an input type to an output type. The input type
//! derives `Deserialize` and `JsonSchema`; its doc comment becomes the tool's
//! description and its fields become the input schema the model sees. One
//! [`export_tools!`] call turns the crate into a WASI preview-2 component
//! implementing the `boram:tool` world:
//!
//! ```ignore
//! use boram_tool_sdk::prelude::*;
//!
//! /// Say hello to someone.
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct Input {
//!     /// Who to greet.
//!     name: String,
//! }
//!
//! fn greet(input: Input) -> Result<String, ToolError> {
//!     Ok(format!("hello, {}", input.name))
//! }
//!
//! boram_tool_sdk::export_tools!("greet" => greet);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type
//! `cdylib`). The SDK decodes the input (bad input becomes an
//! `invalid-input` error that tells the model which fields are expected),
//! encodes the output as JSON, and keeps the raw WIT bindings out of sight.
//! Files are read and written with `std::fs`, and HTTP requests go through
//! [`http`]; what a tool can reach is decided by the host's policy file, not
//! by the tool.

mod error;
mod handler;
mod portable;
pub mod http;
pub mod log;

#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "boram:tool/tool",
        pub_export_macro: true,
        export_macro_name: "export_component",
        default_bindings_module: "boram_tool_sdk::bindings",
    });
}

pub use error::{Context, ToolError};
pub use log::progress;
pub use schemars::{self, JsonSchema};
pub use serde::{self, Deserialize, Serialize};
pub use serde_json;

#[doc(hidden)]
pub use handler::{call_handler, describe_handler, unknown_tool};

/// Everything a tool usually needs, in one `use`.
pub mod prelude {
    pub use crate::log::{self, progress};
    pub use crate::{Context, Deserialize, JsonSchema, Serialize, ToolError};
}

/// Exports the listed tool functions as this crate's component.
///
/// Each entry maps a tool name (`snake_case`, unique) to a function
/// `fn(Input) -> Result<Output, ToolError>` where `Input: Deserialize +
/// JsonSchema` and `Output: Serialize`. Call it once per crate.
#[macro_export]
macro_rules! export_tools {
    ($($name:literal => $handler:path),+ $(,)?) => {
        struct __BoramToolComponent;

        impl $crate::bindings::Guest for __BoramToolComponent {
            fn describe() -> ::std::vec::Vec<$crate::bindings::ToolSpec> {
                ::std::vec![$($crate::describe_handler($name, $handler)),+]
            }

            fn call(
                name: ::std::string::String,
                input: ::std::string::String,
            ) -> ::std::result::Result<::std::string::String, $crate::bindings::ToolError> {
                match name.as_str() {
                    $($name => $crate::call_handler($name, $handler, &input),)+
                    other => ::std::result::Result::Err($crate::unknown_tool(other, &[$($name),+])),
                }
            }
        }

        $crate::bindings::export_component!(__BoramToolComponent with_types_in $crate::bindings);
    };
}
