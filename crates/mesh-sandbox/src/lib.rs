//! The sandbox of a virtual MCP's `code` strategy (#23): a model's JavaScript, run in an embedded
//! QuickJS (`rquickjs`), whose only way out is calling the virtual MCP's tools.
//!
//! What the script has: the language (with `JSON`, `Promise`, `RegExp`, `Map`/`Set`, typed
//! arrays), `tools.<name>(args)` and `callTool(name, args)` for each tool it may see, and
//! `console.log`. What it does not have: files, network, processes, modules, timers, `Date` or
//! `performance` (no clock), `eval` of new code. Each run gets a fresh runtime, so nothing carries
//! over between runs.
//!
//! Limits ([`Limits`]): wall time (an interrupt handler stops the engine, and a tool call cannot
//! outlive it), heap (allocation fails past it), stack, number of tool calls, and the size of the
//! result and of the log. Each is reported as an error sentence the model can read; none takes the
//! process down. A run blocks its thread: the caller runs it on a blocking thread.
//!
//! Tool calls are synchronous inside the script (the caller's [`Host`] blocks until the answer);
//! `await` on them works too, since the script body runs in an async function.

use rquickjs::context::intrinsic;
use rquickjs::{CatchResultExt, CaughtError, Context, Ctx, Exception, Function, Promise, Runtime};
use serde_json::Value;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What one run may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall time, tool calls included.
    pub wall: Duration,
    /// Heap of the JavaScript runtime, in bytes.
    pub memory: usize,
    /// Stack of the JavaScript runtime, in bytes.
    pub stack: usize,
    /// Tool calls.
    pub calls: usize,
    /// Bytes of the result (as JSON) and, separately, of the log.
    pub output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { wall: Duration::from_secs(30), memory: 64 << 20, stack: 512 << 10, calls: 64, output: 256 << 10 }
    }
}

/// What a script may reach outside itself.
pub trait Host {
    /// Calls tool `name` with `arguments` and waits for it, at most until `deadline`: `Ok` is what
    /// the script gets back, `Err` the message of the error it sees thrown.
    fn call(&mut self, name: &str, arguments: Value, deadline: Instant) -> Result<Value, String>;
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The script's return value, or why it failed (a sentence for the model).
    pub result: Result<Value, String>,
    /// What it logged, line by line, within the output limit.
    pub logs: Vec<String>,
    /// Tool calls it made.
    pub calls: usize,
}

/// What the functions given to the script share.
struct Shared {
    host: Box<dyn Host>,
    calls: usize,
    logs: Vec<String>,
    logged: usize,
    deadline: Instant,
    limits: Limits,
}

/// Runs `code` (the body of an async function: `return` gives the result) with `tools` (the
/// names it may call) through `host`.
pub fn run(code: &str, tools: &[String], limits: Limits, host: Box<dyn Host>) -> Outcome {
    let deadline = Instant::now() + limits.wall;
    let shared = Rc::new(RefCell::new(Shared { host, calls: 0, logs: Vec::new(), logged: 0, deadline, limits }));
    let result = match engine(limits, deadline) {
        Ok((_rt, ctx)) => ctx.with(|ctx| script(&ctx, code, tools, &shared)),
        Err(e) => Err(format!("the sandbox could not start: {e}")),
    };
    let s = shared.borrow();
    let result = match result {
        Err(_) if Instant::now() >= deadline => {
            Err(format!("the script ran past its time limit of {} s and was stopped", limits.wall.as_secs_f64()))
        }
        other => other,
    };
    Outcome { result, logs: s.logs.clone(), calls: s.calls }
}

/// A runtime with the limits, and a context without clock, modules or new code.
fn engine(limits: Limits, deadline: Instant) -> rquickjs::Result<(Runtime, Context)> {
    let rt = Runtime::new()?;
    rt.set_memory_limit(limits.memory);
    rt.set_max_stack_size(limits.stack);
    rt.set_interrupt_handler(Some(Box::new(move || Instant::now() >= deadline)));
    type Allowed = (
        intrinsic::Eval, // evaluating the script itself; `eval` is removed from its globals
        intrinsic::RegExpCompiler,
        intrinsic::RegExp,
        intrinsic::Json,
        intrinsic::MapSet,
        intrinsic::TypedArrays,
        intrinsic::Promise,
    );
    let ctx = Context::custom::<Allowed>(&rt)?;
    Ok((rt, ctx))
}

/// The script's run inside the context: the prelude, then the body, then its promise.
fn script(ctx: &Ctx<'_>, code: &str, tools: &[String], shared: &Rc<RefCell<Shared>>) -> Result<Value, String> {
    let limits = shared.borrow().limits;
    install(ctx, tools, shared).map_err(|e| format!("the sandbox could not start: {e}"))?;
    // The body as an async function, so that `return` and `await` both work; its value leaves as
    // JSON text.
    let wrapped = format!(
        "(async () => {{\n{code}\n}})().then((v) => {{ const t = JSON.stringify(v); return t === undefined ? 'null' : t; }})"
    );
    let promise: Promise = ctx.eval(wrapped).catch(ctx).map_err(|e| error_text(e, &limits))?;
    let text: String = promise.finish().catch(ctx).map_err(|e| error_text(e, &limits))?;
    if text.len() > limits.output {
        return Err(format!(
            "the script's result is {} bytes, more than the limit of {} bytes; return less (a summary, a slice)",
            text.len(),
            limits.output
        ));
    }
    serde_json::from_str(&text).map_err(|e| format!("the script's result is not JSON: {e}"))
}

/// Defines `tools`, `callTool` and `console`, and takes away `eval` and `Function`'s constructor
/// (new code at run time).
fn install(ctx: &Ctx<'_>, tools: &[String], shared: &Rc<RefCell<Shared>>) -> rquickjs::Result<()> {
    let globals = ctx.globals();
    let s = shared.clone();
    let call =
        Function::new(ctx.clone(), move |ctx: Ctx<'_>, name: String, args: String| -> rquickjs::Result<String> {
            let mut sh = s.borrow_mut();
            if sh.calls >= sh.limits.calls {
                let limit = sh.limits.calls;
                return Err(Exception::throw_message(&ctx, &format!("more than {limit} tool calls in one script")));
            }
            sh.calls += 1;
            let arguments: Value = serde_json::from_str(&args).unwrap_or(Value::Null);
            if !arguments.is_object() {
                return Err(Exception::throw_type(&ctx, &format!("{name}: the arguments must be an object")));
            }
            let deadline = sh.deadline;
            match sh.host.call(&name, arguments, deadline) {
                Ok(v) => Ok(v.to_string()),
                Err(why) => Err(Exception::throw_message(&ctx, &why)),
            }
        })?;
    globals.set("__mesh_call", call)?;
    let s = shared.clone();
    let log = Function::new(ctx.clone(), move |line: String| {
        let mut sh = s.borrow_mut();
        if sh.logged + line.len() <= sh.limits.output {
            sh.logged += line.len();
            sh.logs.push(line);
        }
    })?;
    globals.set("__mesh_log", log)?;
    globals.set("__mesh_names", serde_json::to_string(tools).unwrap_or_else(|_| "[]".into()))?;
    ctx.eval::<(), _>(PRELUDE)?;
    Ok(())
}

/// Builds the script's world from the functions above, then hides them.
const PRELUDE: &str = r#"
"use strict";
(() => {
  const call = globalThis.__mesh_call, log = globalThis.__mesh_log;
  const names = JSON.parse(globalThis.__mesh_names);
  const callTool = (name, args) => JSON.parse(call(String(name), JSON.stringify(args === undefined ? {} : args)));
  const tools = {};
  for (const n of names) tools[n] = (args) => callTool(n, args);
  const show = (x) => typeof x === "string" ? x : JSON.stringify(x);
  const line = (...a) => log(a.map(show).join(" "));
  globalThis.tools = Object.freeze(tools);
  globalThis.callTool = callTool;
  globalThis.console = Object.freeze({ log: line, info: line, warn: line, error: line, debug: line });
  delete globalThis.__mesh_call; delete globalThis.__mesh_log; delete globalThis.__mesh_names;
  delete globalThis.eval;
  Object.defineProperty(Function.prototype, "constructor", { value: undefined });
})();
"#;

/// An error the script raised (or the engine raised for it) as a sentence for the model.
fn error_text(e: CaughtError<'_>, limits: &Limits) -> String {
    match e {
        CaughtError::Exception(ex) => {
            let message = ex.message().unwrap_or_default();
            if message.contains("out of memory") {
                return format!(
                    "the script used more than its memory limit of {} MiB and was stopped",
                    limits.memory >> 20
                );
            }
            if message.contains("stack overflow") {
                return format!(
                    "the script overflowed its stack limit of {} KiB (deep recursion?)",
                    limits.stack >> 10
                );
            }
            if message.contains("interrupted") {
                return format!(
                    "the script ran past its time limit of {} s and was stopped",
                    limits.wall.as_secs_f64()
                );
            }
            let mut text = format!("{}: {message}", ex.get::<_, String>("name").unwrap_or_else(|_| "Error".into()));
            if let Some(stack) = ex.stack().filter(|s| !s.is_empty()) {
                text.push('\n');
                text.push_str(stack.trim_end());
            }
            text
        }
        CaughtError::Value(v) => format!("the script threw {}", thrown(&v)),
        CaughtError::Error(rquickjs::Error::Allocation) => {
            format!("the script used more than its memory limit of {} MiB and was stopped", limits.memory >> 20)
        }
        CaughtError::Error(e) => format!("the script failed: {e}"),
    }
}

/// A thrown value that is not an Error, shown as JSON where it can be.
fn thrown(v: &rquickjs::Value<'_>) -> String {
    v.ctx()
        .json_stringify(v.clone())
        .ok()
        .flatten()
        .and_then(|s| s.to_string().ok())
        .unwrap_or_else(|| format!("a {}", v.type_name()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    /// Answers `add` with the sum and `fail` with an error; records what was called.
    struct Calc(Arc<Mutex<Vec<String>>>);
    impl Host for Calc {
        fn call(&mut self, name: &str, arguments: Value, _deadline: Instant) -> Result<Value, String> {
            self.0.lock().unwrap().push(name.to_string());
            match name {
                "add" => Ok(json!(arguments["a"].as_i64().unwrap_or(0) + arguments["b"].as_i64().unwrap_or(0))),
                "sleep" => {
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(Value::Null)
                }
                _ => Err(format!("Unknown tool: {name}")),
            }
        }
    }

    fn go(code: &str, limits: Limits) -> (Outcome, Vec<String>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tools = ["add".to_string(), "sleep".to_string(), "fail".to_string()];
        let out = run(code, &tools, limits, Box::new(Calc(seen.clone())));
        let seen = seen.lock().unwrap().clone();
        (out, seen)
    }

    #[test]
    fn a_script_calls_tools_combines_them_and_logs() {
        let (out, seen) = go(
            "const x = tools.add({a: 1, b: 2}); const y = await callTool('add', {a: x, b: 10});\n\
             console.log('sum', y, {x}); return {x, y};",
            Limits::default(),
        );
        assert_eq!(out.result, Ok(json!({"x": 3, "y": 13})));
        assert_eq!(out.logs, ["sum 13 {\"x\":3}"]);
        assert_eq!((out.calls, seen), (2, vec!["add".to_string(), "add".to_string()]));
        assert_eq!(go("return undefined", Limits::default()).0.result, Ok(Value::Null));
    }

    #[test]
    fn errors_come_back_as_sentences_the_model_can_read() {
        let (out, _) = go("tools.fail({})", Limits::default());
        assert!(out.result.as_ref().unwrap_err().contains("Unknown tool: fail"), "{out:?}");
        let (out, _) = go("try { tools.fail({}) } catch (e) { return 'caught ' + e.message }", Limits::default());
        assert_eq!(out.result, Ok(json!("caught Unknown tool: fail")));
        let (out, _) = go("return nope.x", Limits::default());
        assert!(out.result.as_ref().unwrap_err().starts_with("ReferenceError"), "{out:?}");
        let (out, _) = go("this is not javascript", Limits::default());
        assert!(out.result.as_ref().unwrap_err().starts_with("SyntaxError"), "{out:?}");
        let (out, _) = go("throw {code: 7}", Limits::default());
        assert_eq!(out.result, Err("the script threw {\"code\":7}".into()));
        let (out, _) = go("return tools.add(5)", Limits::default());
        assert!(out.result.as_ref().unwrap_err().contains("must be an object"), "{out:?}");
    }

    #[test]
    fn nothing_outside_is_reachable() {
        for (what, code) in [
            ("no clock", "return typeof Date"),
            ("no eval", "return typeof eval"),
            ("no Function constructor", "return typeof (() => 1).constructor"),
            ("no modules", "return typeof require"),
            ("no timers", "return typeof setTimeout"),
            ("no performance", "return typeof performance"),
            ("no host functions", "return typeof __mesh_call"),
        ] {
            assert_eq!(go(code, Limits::default()).0.result, Ok(json!("undefined")), "{what}");
        }
        let (out, _) = go("return await import('fs')", Limits::default());
        assert!(out.result.is_err(), "{out:?}");
    }

    #[test]
    fn a_loop_a_memory_bomb_deep_recursion_and_too_many_calls_are_stopped() {
        let quick = Limits { wall: Duration::from_millis(300), memory: 16 << 20, ..Limits::default() };
        let started = Instant::now();
        let (out, _) = go("while (true) {}", quick);
        assert!(out.result.as_ref().unwrap_err().contains("time limit"), "{out:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "stopped soon after the limit: {:?}", started.elapsed());
        let (out, _) = go("let a = []; while (true) a.push('x'.repeat(1 << 16));", quick);
        assert!(out.result.as_ref().unwrap_err().contains("memory limit"), "{out:?}");
        let (out, _) = go("const f = (n) => f(n + 1) + 1; return f(0);", Limits::default());
        assert!(out.result.as_ref().unwrap_err().contains("stack"), "{out:?}");
        let (out, seen) =
            go("for (let i = 0; i < 10; i++) tools.add({a: i, b: 0});", Limits { calls: 3, ..Limits::default() });
        assert!(out.result.as_ref().unwrap_err().contains("more than 3 tool calls"), "{out:?}");
        assert_eq!(seen.len(), 3);
        // A tool call cannot carry a script past its time.
        let (out, _) = go("tools.sleep({}); tools.sleep({}); while (true) {}", quick);
        assert!(out.result.as_ref().unwrap_err().contains("time limit"), "{out:?}");
        let (out, _) = go("return 'x'.repeat(1000)", Limits { output: 100, ..Limits::default() });
        assert!(out.result.as_ref().unwrap_err().contains("more than the limit of 100 bytes"), "{out:?}");
        // And the next run is fine.
        assert_eq!(go("return 1 + 1", Limits::default()).0.result, Ok(json!(2)));
    }
}
