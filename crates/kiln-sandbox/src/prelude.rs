//! The prelude (`prelude.js`), compiled to bytecode once per process and
//! loaded into each block's fresh context: compiling it costs about 200 µs,
//! more than the runtime and context together, while loading its bytecode
//! costs about 15 µs.
#![allow(
    unsafe_code,
    reason = "loading bytecode is unsafe; ours is compiled in process from our own source"
)]

use std::sync::OnceLock;

use rquickjs::module::WriteOptions;
use rquickjs::{Context, Ctx, Function, Module, Runtime};

const SOURCE: &str = include_str!("prelude.js");

/// The module's name, in stack traces of prelude frames.
const MODULE_NAME: &str = "kiln:prelude";

static BYTECODE: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();

/// The prelude's bytecode, compiled on first use.
pub(crate) fn bytecode() -> Result<&'static [u8], String> {
    BYTECODE
        .get_or_init(compile)
        .as_deref()
        .map_err(|error| format!("cannot compile the prelude: {error}"))
}

fn compile() -> Result<Vec<u8>, String> {
    let runtime = Runtime::new().map_err(|error| error.to_string())?;
    let context = Context::full(&runtime).map_err(|error| error.to_string())?;
    context
        .with(|ctx| {
            let module = Module::declare(ctx.clone(), MODULE_NAME, SOURCE)?;
            module.write(WriteOptions {
                strip_source: true,
                ..WriteOptions::default()
            })
        })
        .map_err(|error| error.to_string())
}

/// Loads and evaluates the prelude in `ctx` and returns its `setup`.
pub(crate) fn load<'js>(ctx: &Ctx<'js>, bytecode: &[u8]) -> rquickjs::Result<Function<'js>> {
    // SAFETY: QuickJS trusts bytecode to be well-formed and written by the
    // same engine build. These bytes are: `compile` wrote them with
    // `Module::write`, in this process, from `SOURCE`; they never leave
    // memory and nothing else writes to them.
    let module = unsafe { Module::load(ctx.clone(), bytecode) }?;
    let (module, evaluated) = module.eval()?;
    // Without top-level await, the module has finished once its jobs ran.
    evaluated.finish::<()>()?;
    module.get("default")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prelude_compiles() {
        let bytecode = bytecode().unwrap();
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        let name: String = context.with(|ctx| load(&ctx, bytecode)?.get("name")).unwrap();
        assert_eq!(name, "setup");
    }
}
