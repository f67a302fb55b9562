//! `console` capture: formatting, one line per call, and the output limit.

use std::time::Duration;

use kiln_core::sandbox::SandboxLimits;
use serde_json::json;

use crate::{FakeHost, limits, run, run_with};

/// Runs `code` with `output_bytes` and checks the console and its flag.
async fn check_console(code: &str, output_bytes: usize, expected: &str, truncated: bool) {
    let limits = SandboxLimits {
        output_bytes,
        ..limits()
    };
    let outcome = run_with(code, FakeHost::empty(), limits).await;
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    assert_eq!(outcome.console, expected, "code: {code}");
    assert_eq!(outcome.console_truncated, truncated, "code: {code}");
}

#[tokio::test]
async fn each_call_is_a_line_of_space_joined_values() {
    check_console(
        r#"console.log("a", 1, { b: [2] }, null, undefined, true);
           console.error("e");
           console.log();
           console.warn("w"); console.info("i"); console.debug("d")"#,
        4096,
        "a 1 {\"b\":[2]} null undefined true\ne\n\nw\ni\nd",
        false,
    )
    .await;
}

#[tokio::test]
async fn values_are_formatted_like_node() {
    check_console(
        r#"console.log(new TypeError("bad"));
           console.log(function named() {}, () => 1, 10n, Symbol("s"));
           console.log(new Date(0), [1, "two"]);
           const cycle = { name: "c" }; cycle.self = cycle;
           console.log(cycle)"#,
        4096,
        "TypeError: bad\n\
         [Function: named] [Function (anonymous)] 10n Symbol(s)\n\
         1970-01-01T00:00:00.000Z [1,\"two\"]\n\
         {\"name\":\"c\",\"self\":\"[Circular]\"}",
        false,
    )
    .await;
}

#[tokio::test]
async fn output_past_the_limit_is_cut_and_flagged() {
    check_console(
        "console.log('12345'); console.log('67890'); console.log('x')",
        10,
        "12345\n6789",
        true,
    )
    .await;
}

#[tokio::test]
async fn the_cut_falls_on_a_char_boundary() {
    // "aéé" is five bytes; four are allowed.
    check_console("console.log('aéé')", 4, "aé", true).await;
    // A surrogate pair split by the cut is not half-kept.
    check_console("console.log('ab😀')", 4, "ab", true).await;
}

#[tokio::test]
async fn huge_output_is_cheap_and_bounded() {
    let code = r#"
        console.log("x".repeat(5000000));
        for (let i = 0; i < 200000; i++) console.log("line", i, { i });
        "done"
    "#;
    let limits = SandboxLimits {
        output_bytes: 1000,
        time: Duration::from_secs(10),
        ..limits()
    };
    let outcome = run_with(code, FakeHost::empty(), limits).await;
    assert_eq!(outcome.result, Ok(json!("done")));
    assert_eq!(outcome.console, "x".repeat(1000));
    assert!(outcome.console_truncated);
}

#[tokio::test]
async fn output_before_an_error_is_kept() {
    let outcome = run("console.log('before'); null.x").await;
    assert!(outcome.result.is_err());
    assert_eq!(outcome.console, "before");
}
