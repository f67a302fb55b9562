//! The completion value: the last expression statement, or a top-level
//! `return`, converted to JSON.

use serde_json::json;

use crate::{FakeHost, Reply, check, limits, run_with, thrown};

#[tokio::test]
async fn the_last_expression_statement_is_the_result() {
    check("1 + 1", Ok(json!(2))).await;
    check("let x = 20; x * 2 + 2", Ok(json!(42))).await;
    check("'kiln'.toUpperCase()", Ok(json!("KILN"))).await;
    check("1.5", Ok(json!(1.5))).await;
    check("if (true) { 'then' } else { 'else' }", Ok(json!("then"))).await;
    check(
        "const o = { a: 1, b: [true, null, 'x'] }; o",
        Ok(json!({ "a": 1, "b": [true, null, "x"] })),
    )
    .await;
}

#[tokio::test]
async fn a_block_without_a_value_gives_null() {
    check("let x = 1;", Ok(json!(null))).await;
    check("", Ok(json!(null))).await;
    check("function f() {}", Ok(json!(null))).await;
}

#[tokio::test]
async fn top_level_await_works_in_both_shapes() {
    check("await Promise.resolve(6) * 7", Ok(json!(42))).await;
    check("const v = await Promise.resolve(5); return v * 2", Ok(json!(10))).await;
}

#[tokio::test]
async fn a_top_level_return_gives_the_returned_value() {
    check("const x = 20;\nreturn x + 1", Ok(json!(21))).await;
    check("return { ok: true }", Ok(json!({ "ok": true }))).await;
    check(
        "for (const n of [1, 2, 3]) { if (n === 2) return n }",
        Ok(json!(2)),
    )
    .await;
}

#[tokio::test]
async fn with_a_return_the_last_expression_does_not_count() {
    // The block runs as a function body, which has no completion value.
    check("if (false) return 1;\n2", Ok(json!(null))).await;
}

#[tokio::test]
async fn values_convert_like_json_stringify() {
    check("undefined", Ok(json!(null))).await;
    check("(() => 1)", Ok(json!(null))).await;
    check("Symbol('s')", Ok(json!(null))).await;
    check("NaN", Ok(json!(null))).await;
    check("12345678901234567890n", Ok(json!("12345678901234567890"))).await;
    check("[undefined, () => 1, 2n]", Ok(json!([null, null, "2"]))).await;
    check("({ a: undefined, b: 1 })", Ok(json!({ "b": 1 }))).await;
    check("new Date(0)", Ok(json!("1970-01-01T00:00:00.000Z"))).await;
    check("'\\ud800'", Ok(json!("\u{fffd}"))).await;
}

#[tokio::test]
async fn a_cyclic_result_is_a_thrown_error() {
    let (message, _) = thrown("const a = {}; a.self = a; a").await;
    assert_eq!(message, "TypeError: circular reference");
}

#[tokio::test]
async fn the_result_can_be_a_host_reply() {
    let host = FakeHost::new(&[("search", Reply::Value(json!({ "hits": [1, 2] })))]);
    let outcome = run_with("await search('kiln')", host.clone(), limits()).await;
    assert_eq!(outcome.result, Ok(json!({ "hits": [1, 2] })));
    assert_eq!(host.calls(), vec![("search".to_owned(), json!(["kiln"]))]);
}
