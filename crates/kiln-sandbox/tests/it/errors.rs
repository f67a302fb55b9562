//! How blocks fail: syntax errors, uncaught throws of any value, running out
//! of memory, and overflowing the stack.

use kiln_core::sandbox::{SandboxError, SandboxLimits};
use serde_json::json;

use crate::{FakeHost, check, limits, run_with, thrown};

#[tokio::test]
async fn a_parse_error_is_a_syntax_error_with_its_place() {
    check(
        "let x = 1;\nlet = ;",
        Err(SandboxError::Syntax(
            "unexpected token in expression: ';' at block.js:2:7".to_owned(),
        )),
    )
    .await;
}

#[tokio::test]
async fn a_parse_error_in_a_block_with_return_keeps_its_place() {
    check(
        "return (1 +;",
        Err(SandboxError::Syntax(
            "unexpected token in expression: ';' at block.js:1:12".to_owned(),
        )),
    )
    .await;
}

#[tokio::test]
async fn an_uncaught_type_error_has_its_message_and_stack() {
    let (message, stack) = thrown("const search = 1;\nsearch('q')").await;
    assert_eq!(message, "TypeError: not a function");
    assert_eq!(stack.as_deref(), Some("    at <eval> (block.js:2:1)"));

    let (message, _) = thrown("null.x").await;
    assert_eq!(message, "TypeError: cannot read property 'x' of null");
    let (message, _) = thrown("missing()").await;
    assert_eq!(message, "ReferenceError: missing is not defined");
    let (message, _) = thrown("class Oops extends Error {}\nthrow new Oops('custom')").await;
    assert_eq!(message, "Error: custom");
}

#[tokio::test]
async fn thrown_non_errors_read_as_strings_or_json() {
    check(
        "throw 'boom'",
        Err(SandboxError::Thrown {
            message: "boom".to_owned(),
            stack: None,
        }),
    )
    .await;
    check(
        "throw { code: 7, why: ['x'] }",
        Err(SandboxError::Thrown {
            message: r#"{"code":7,"why":["x"]}"#.to_owned(),
            stack: None,
        }),
    )
    .await;
    check(
        "throw 42",
        Err(SandboxError::Thrown {
            message: "42".to_owned(),
            stack: None,
        }),
    )
    .await;
    check(
        "throw null",
        Err(SandboxError::Thrown {
            message: "null".to_owned(),
            stack: None,
        }),
    )
    .await;
    check(
        "throw undefined",
        Err(SandboxError::Thrown {
            message: "undefined".to_owned(),
            stack: None,
        }),
    )
    .await;
    check(
        "await Promise.reject(new RangeError('late'))",
        Err(SandboxError::Thrown {
            message: "RangeError: late".to_owned(),
            stack: Some("    at <eval> (block.js:1:26)".to_owned()),
        }),
    )
    .await;
}

/// Runs `code` with a 16 MiB heap and checks it ran out of memory.
async fn check_out_of_memory(code: &str) {
    let outcome = run_with(code, FakeHost::empty(), limits()).await;
    assert_eq!(outcome.result, Err(SandboxError::OutOfMemory), "code: {code}");
}

#[tokio::test]
async fn memory_bombs_run_out_of_memory() {
    check_out_of_memory("let a = []; while (true) a.push(new Array(1e6))").await;
    check_out_of_memory("let a = []; while (true) a.push({ n: a.length })").await;
    check_out_of_memory(
        "const parts = []; while (true) parts.push('x'.repeat(1000) + parts.length); return 1",
    )
    .await;
    check_out_of_memory("new Array(1e9).fill(0)").await;
    check_out_of_memory("'x'.repeat(2 ** 29)").await;
}

#[tokio::test]
async fn out_of_memory_can_be_caught_and_the_block_goes_on() {
    let code = r#"
        let hog = [];
        let caught = false;
        try {
            while (true) hog.push(new Array(1e5));
        } catch (e) {
            caught = true;
            hog = null;
        }
        [caught, 40 + 2]
    "#;
    check(code, Ok(json!([true, 42]))).await;
}

#[tokio::test]
async fn a_tiny_heap_fails_before_the_code_runs() {
    let limits = SandboxLimits {
        memory_bytes: 1024,
        ..limits()
    };
    let outcome = run_with("1", FakeHost::empty(), limits).await;
    assert_eq!(outcome.result, Err(SandboxError::OutOfMemory));
}

#[tokio::test]
async fn runaway_recursion_overflows_the_stack() {
    check(
        "function f(n) { return f(n + 1) + 1 }\nf(0)",
        Err(SandboxError::StackOverflow),
    )
    .await;
    check(
        "const g = async (n) => 1 + await g(n + 1); return await g(0)",
        Err(SandboxError::StackOverflow),
    )
    .await;
    check(
        "let a = []; for (let i = 0; i < 1e5; i++) a = [a]; JSON.stringify(a)",
        Err(SandboxError::StackOverflow),
    )
    .await;
}

#[tokio::test]
async fn a_stack_limit_of_zero_still_checks_recursion() {
    let limits = SandboxLimits {
        stack_bytes: 0,
        ..limits()
    };
    let outcome = run_with("function f() { return f() }\nf()", FakeHost::empty(), limits).await;
    assert_eq!(outcome.result, Err(SandboxError::StackOverflow));
}

#[tokio::test]
async fn a_caught_stack_overflow_is_an_ordinary_error() {
    let code = "function f() { return f() }\ntry { f() } catch (e) { e.message }";
    check(code, Ok(json!("Maximum call stack size exceeded"))).await;
}
