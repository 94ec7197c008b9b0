//! The sandbox of a virtual MCP's `code` strategy (#23): a model's JavaScript, run in an embedded
//! QuickJS (`rquickjs`), whose only way out is calling the virtual MCP's tools.
//!
//! What the script has: the language (with `JSON`, `Promise`, `RegExp`, `Map`/`Set`, typed
//! arrays), `tools.<name>(args)` and `callTool(name, args)` for each tool it may see, and
//! `console.log`. What it does not have: files, network, processes, modules, timers, `Date` or
//! `performance` (no clock), `eval` of new code. Each run gets a fresh runtime, so nothing carries
//! over between runs.
//!
//! Limits ([`Limits`]): wall time (an interrupt handler stops the engine, the job queue is driven
//! against the deadline, and a tool call cannot outlive it), heap (allocation fails past it),
//! stack, number of tool calls, and the size of the result and of the log. Each is reported as an
//! error sentence the model can read; none takes the process down. QuickJS checks for interrupts
//! in loops, calls and the regex engine, but some generic built-ins loop over an array-like's
//! `length` without checking: the prelude refuses array-likes longer than any array the heap could
//! hold ([`MAX_LENGTH`]). A run blocks its thread: the caller runs it on a thread of its own whose
//! stack is larger than the stack limit, and should not wait for it past the wall limit.
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

/// The longest array-like a built-in may walk: more elements than a heap within the limits
/// can hold, so only a forged `length` is refused.
pub const MAX_LENGTH: u64 = 1 << 26;
/// Most lines a log keeps (each also counts against the output limit).
const MAX_LOG_LINES: usize = 1_000;

/// The largest limits a configuration may set: beyond them the sandbox's own guarantees (the
/// thread's real stack, the deadline's arithmetic) would not hold.
pub const CEILING: Limits =
    Limits { wall: Duration::from_secs(3_600), memory: 4 << 30, stack: 8 << 20, calls: 10_000, output: 64 << 20 };

/// What a script may reach outside itself.
pub trait Host {
    /// Calls tool `name` with `arguments` and waits for it, at most until `deadline`: `Ok` is what
    /// the script gets back, `Err` the message of the error it sees thrown.
    fn call(&mut self, name: &str, arguments: Value, deadline: Instant) -> Result<Value, String>;
    /// Whether the run should stop now (whoever asked for it is gone). Asked often: cheap.
    fn stopped(&self) -> bool {
        false
    }
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
    let limits = Limits {
        wall: limits.wall.min(CEILING.wall),
        memory: limits.memory.min(CEILING.memory),
        stack: limits.stack.min(CEILING.stack),
        calls: limits.calls.min(CEILING.calls),
        output: limits.output.min(CEILING.output),
    };
    let deadline = Instant::now() + limits.wall;
    let shared = Rc::new(RefCell::new(Shared { host, calls: 0, logs: Vec::new(), logged: 0, deadline, limits }));
    let result = match engine(limits, deadline, &shared) {
        Ok((_rt, ctx)) => ctx.with(|ctx| script(&ctx, code, tools, &shared)),
        Err(e) => Err(format!("the sandbox could not start: {e}")),
    };
    let s = shared.borrow();
    let result = match result {
        Err(_) if s.host.stopped() => {
            Err("the script was stopped: its call was cancelled or its session ended".to_string())
        }
        Err(_) if Instant::now() >= deadline => Err(over_time(&limits)),
        other => other,
    };
    Outcome { result, logs: s.logs.clone(), calls: s.calls }
}

fn over_time(limits: &Limits) -> String {
    format!("the script ran past its time limit of {} s and was stopped", limits.wall.as_secs_f64())
}

/// A runtime with the limits, and a context without clock, modules or new code.
fn engine(limits: Limits, deadline: Instant, shared: &Rc<RefCell<Shared>>) -> rquickjs::Result<(Runtime, Context)> {
    let rt = Runtime::new()?;
    rt.set_memory_limit(limits.memory);
    rt.set_max_stack_size(limits.stack);
    // Never called while a tool call holds the borrow (the engine is not running then).
    let sh = Rc::downgrade(shared);
    let stop = move || {
        Instant::now() >= deadline || sh.upgrade().is_some_and(|s| s.try_borrow().is_ok_and(|s| s.host.stopped()))
    };
    rt.set_interrupt_handler(Some(Box::new(stop)));
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
    // The job queue driven here rather than by `Promise::finish`, which would go on past the
    // deadline as long as jobs keep queueing jobs.
    let deadline = shared.borrow().deadline;
    let text: String = loop {
        if let Some(done) = promise.result::<String>() {
            break done.catch(ctx).map_err(|e| error_text(e, &limits))?;
        }
        if Instant::now() >= deadline || shared.try_borrow().is_ok_and(|s| s.host.stopped()) {
            return Err(over_time(&limits));
        }
        if !ctx.execute_pending_job() {
            return Err("the script waits for something that never happens (a promise nothing resolves)".into());
        }
    };
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
        // Each line costs its bytes and one more, so that empty lines count too.
        if sh.logs.len() < MAX_LOG_LINES && sh.logged + line.len() < sh.limits.output {
            sh.logged += line.len() + 1;
            sh.logs.push(line);
        }
    })?;
    globals.set("__mesh_log", log)?;
    globals.set("__mesh_names", serde_json::to_string(tools).unwrap_or_else(|_| "[]".into()))?;
    globals.set("__mesh_max_length", MAX_LENGTH as f64)?;
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
  // Built-ins that walk an array-like's length without letting the engine be interrupted:
  // refused on a length no real array within the heap limit can have.
  const most = globalThis.__mesh_max_length;
  const guard = (proto) => {
    for (const name of Object.getOwnPropertyNames(proto)) {
      const d = Object.getOwnPropertyDescriptor(proto, name);
      if (name === "constructor" || typeof d.value !== "function") continue;
      const original = d.value;
      const guarded = { [name](...args) {
        if (this !== null && this !== undefined && Number(this.length) > most) {
          throw new RangeError(name + ": a length of " + this.length + " is more than any array here can have");
        }
        return original.apply(this, args);
      } }[name];
      Object.defineProperty(proto, name, { ...d, value: guarded });
    }
  };
  guard(Array.prototype);
  for (const key of ["__mesh_call", "__mesh_log", "__mesh_names", "__mesh_max_length", "eval", "Function"]) {
    delete globalThis[key];
  }
  // No way back to compiling new code from strings.
  for (const f of [function () {}, async function () {}, function* () {}, async function* () {}]) {
    Object.defineProperty(Object.getPrototypeOf(f), "constructor", { value: undefined });
  }
})();
"#;

/// An error the script raised (or the engine raised for it) as a sentence for the model.
fn error_text(e: CaughtError<'_>, limits: &Limits) -> String {
    match e {
        CaughtError::Exception(ex) => {
            let message = ex.message().unwrap_or_default();
            let name = ex.get::<_, String>("name").unwrap_or_else(|_| "Error".into());
            // The engine's own limits are InternalErrors; an error a tool or the script made is
            // not, whatever its text says.
            if name != "InternalError" {
                let mut text = format!("{name}: {message}");
                if let Some(stack) = ex.stack().filter(|s| !s.is_empty()) {
                    text.push('\n');
                    text.push_str(stack.trim_end());
                }
                return text;
            }
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
            format!("{name}: {message}")
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
            ("no Function global", "return typeof Function"),
            ("no async function constructor", "return typeof (async () => 1).constructor"),
            ("no generator constructor", "return typeof (function* () {}).constructor"),
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
        // Built-ins that would walk a forged length, and promises that keep queueing promises.
        for code in [
            "return Array.prototype.join.call({length: 2 ** 53 - 1}, '')",
            "return Array.prototype.reverse.call({length: 2 ** 53 - 1})",
            "return Array.prototype.sort.call({length: 2 ** 53 - 1})",
            "return new Array(2 ** 32 - 1).join('')",
        ] {
            let (out, _) = go(code, quick);
            assert!(out.result.as_ref().unwrap_err().contains("more than any array"), "{code}: {out:?}");
        }
        let started = Instant::now();
        let (out, _) =
            go("const spin = () => Promise.resolve().then(spin); spin(); await new Promise(() => {});", quick);
        assert!(out.result.as_ref().unwrap_err().contains("time limit"), "{out:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        let started = Instant::now();
        let (out, _) =
            go("const two = () => Promise.resolve().then(two).then(two); two(); await new Promise(() => {});", quick);
        assert!(out.result.is_err(), "{out:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        let (out, _) = go("await new Promise(() => {})", quick);
        assert!(out.result.as_ref().unwrap_err().contains("never happens"), "{out:?}");
        // Empty log lines count too.
        let (out, _) = go("for (let i = 0; i < 100000; i++) console.log(); return 1", Limits::default());
        assert_eq!(out.result, Ok(json!(1)));
        assert_eq!(out.logs.len(), MAX_LOG_LINES);
        // A tool's error that mentions a limit is still the tool's.
        let (out, _) = go("throw new Error('upstream: out of memory')", Limits::default());
        assert!(out.result.as_ref().unwrap_err().starts_with("Error: upstream: out of memory"), "{out:?}");
        let (out, _) = go("return 'x'.repeat(1000)", Limits { output: 100, ..Limits::default() });
        assert!(out.result.as_ref().unwrap_err().contains("more than the limit of 100 bytes"), "{out:?}");
        // And the next run is fine.
        assert_eq!(go("return 1 + 1", Limits::default()).0.result, Ok(json!(2)));
    }
}
