//! Skill modules: `require(name)` returns a module's exports, each call of
//! an exported function is noted to the host, and `inspect_module` checks a
//! module (syntax, top level, exports) before it is stored.

use std::time::Duration;

use kiln_core::sandbox::{MAX_MODULE_CALL_NOTES, ModuleExport, Sandbox, SandboxError, SandboxModule};
use kiln_sandbox::QuickJsSandbox;
use serde_json::json;

use crate::{FakeHost, Reply, limits, run_with};

const PRICING: &str = r#"// Prices orders.
export const CURRENCY = "EUR";
let quotes = 0;
export function quote(items, { coupon } = {}) {
  quotes += 1;
  const total = items.reduce((sum, item) => sum + item.price * item.quantity, 0);
  return coupon === "WELCOME10" ? total * 0.9 : total;
}
export function quoted() { return quotes; }
"#;

fn modules(list: &[(&str, &str)]) -> Vec<SandboxModule> {
    list.iter()
        .map(|(name, source)| SandboxModule::source(name, &format!("skills/{name}.js"), source))
        .collect()
}

#[tokio::test]
async fn require_returns_the_exports_and_each_call_is_noted() {
    let host = FakeHost::with_modules(&[], &[("pricing", PRICING)]);
    let code = r#"
        const pricing = require("pricing");
        const again = require("pricing");
        const total = pricing.quote([{ price: 5, quantity: 2 }], { coupon: "WELCOME10" });
        pricing.quote([]);
        [total, pricing.CURRENCY, again === pricing, again.quoted(), Object.isFrozen(pricing), pricing.quote.name]
    "#;
    let outcome = run_with(code, host.clone(), limits()).await;
    assert_eq!(outcome.result, Ok(json!([9, "EUR", true, 2, true, "quote"])));
    assert_eq!(
        host.module_calls(),
        vec![
            ("pricing".to_owned(), "quote".to_owned()),
            ("pricing".to_owned(), "quote".to_owned()),
            ("pricing".to_owned(), "quoted".to_owned()),
        ]
    );
}

#[tokio::test]
async fn exported_functions_reach_the_host_functions_and_other_skills() {
    let orders = r#"
        const { CURRENCY } = require("pricing");
        export async function find(id) {
          const found = await lookup(id);
          return { ...found, currency: CURRENCY };
        }
    "#;
    let host = FakeHost::with_modules(
        &[("lookup", Reply::Value(json!({ "id": "o1", "total": 12 })))],
        &[("orders", orders), ("pricing", PRICING)],
    );
    let outcome = run_with(r#"await require("orders").find("o1")"#, host.clone(), limits()).await;
    assert_eq!(
        outcome.result,
        Ok(json!({ "id": "o1", "total": 12, "currency": "EUR" }))
    );
    assert_eq!(host.calls(), vec![("lookup".to_owned(), json!(["o1"]))]);
    assert_eq!(
        host.module_calls(),
        vec![("orders".to_owned(), "find".to_owned())]
    );
}

#[tokio::test]
async fn a_loop_over_a_skill_is_noted_only_so_many_times() {
    let host = FakeHost::with_modules(&[], &[("pricing", PRICING)]);
    let code = r#"
        const { quote, quoted } = require("pricing");
        for (let i = 0; i < 250; i++) quote([{ price: 1, quantity: i }]);
        quoted()
    "#;
    let outcome = run_with(code, host.clone(), limits()).await;
    assert_eq!(outcome.result, Ok(json!(250)));
    assert_eq!(host.module_calls().len(), MAX_MODULE_CALL_NOTES as usize);
}

#[tokio::test]
async fn unknown_broken_and_awaiting_modules_throw_in_the_block() {
    let host = FakeHost::with_modules(
        &[],
        &[
            ("pricing", PRICING),
            ("broken", "export function f( {\n"),
            ("waits", "await Promise.resolve(1);\nexport const a = 1;"),
            ("imports", "import { x } from 'pricing';\nexport const y = x;"),
        ],
    );
    let caught = |name: &str| format!("try {{ require({name:?}); 'loaded' }} catch (e) {{ String(e) }}");
    let unknown = run_with(&caught("nope"), host.clone(), limits()).await;
    assert_eq!(
        unknown.result,
        Ok(json!(
            "Error: no skill module named `nope` (this agent's skill modules: `pricing`, `broken`, `waits`, `imports`)"
        ))
    );
    let broken = run_with(&caught("broken"), host.clone(), limits()).await;
    let message = broken.result.unwrap();
    assert!(
        message.as_str().unwrap().starts_with("SyntaxError: "),
        "{message}"
    );
    let waits = run_with(&caught("waits"), host.clone(), limits()).await;
    assert!(
        waits
            .result
            .unwrap()
            .as_str()
            .unwrap()
            .contains("awaits at its top level"),
    );
    let imports = run_with(&caught("imports"), host.clone(), limits()).await;
    assert_ne!(imports.result, Ok(json!("loaded")));
    let none = run_with(&caught("pricing"), FakeHost::empty(), limits()).await;
    assert_eq!(
        none.result,
        Ok(json!(
            "Error: no skill module named `pricing` (this agent has no skill modules)"
        ))
    );
}

#[tokio::test]
async fn inspection_lists_exports_with_their_parameters() {
    let source = r#"
        export const LIMIT = 3;
        export function quote(items, { coupon, region } = {}, rate = compute(1, 2)) {}
        export async function lookup(id) {}
        export const double = x => x * 2;
        export default function (a, b) {}
    "#;
    let exports = QuickJsSandbox::new()
        .inspect_module(&modules(&[("tools", source)]), "tools", limits())
        .await
        .unwrap();
    let export = |name: &str, params: Option<&[&str]>| ModuleExport {
        name: name.to_owned(),
        params: params.map(|p| p.iter().map(|s| (*s).to_owned()).collect()),
    };
    assert_eq!(
        exports,
        vec![
            export("LIMIT", None),
            export("default", Some(&["a", "b"])),
            export("double", Some(&["x"])),
            export("lookup", Some(&["id"])),
            export("quote", Some(&["items", "{ coupon, region }", "rate"])),
        ]
    );
}

#[tokio::test]
async fn inspection_places_syntax_errors_and_throws_in_the_module_file() {
    let sandbox = QuickJsSandbox::new();
    let syntax = sandbox
        .inspect_module(
            &modules(&[(
                "broken",
                "export const a = 1;\nexport function f() {\n  return 1 +;\n}\n",
            )]),
            "broken",
            limits(),
        )
        .await
        .unwrap_err();
    assert_eq!(syntax.line, Some(3));
    assert!(syntax.column.is_some());
    match &syntax.error {
        SandboxError::Syntax(message) => assert!(message.contains("at skills/broken.js:3:"), "{message}"),
        other => panic!("not a syntax error: {other:?}"),
    }

    let throws = sandbox
        .inspect_module(
            &modules(&[(
                "throws",
                "export const a = 1;\n\nthrow new Error(\"no config\");\n",
            )]),
            "throws",
            limits(),
        )
        .await
        .unwrap_err();
    assert_eq!(throws.line, Some(3));
    match &throws.error {
        SandboxError::Thrown { message, .. } => assert_eq!(message, "Error: no config"),
        other => panic!("did not throw: {other:?}"),
    }

    // At inspection there are no host functions.
    let calls = sandbox
        .inspect_module(
            &modules(&[("calls", "search('x');\nexport const a = 1;")]),
            "calls",
            limits(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&calls.error, SandboxError::Thrown { message, .. } if message.contains("search")),
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_top_level_that_never_ends_is_stopped_at_the_limit() {
    let mut short = limits();
    short.time = Duration::from_millis(300);
    let looping = QuickJsSandbox::new()
        .inspect_module(
            &modules(&[("spin", "export const a = 1;\nwhile (true) {}\n")]),
            "spin",
            short,
        )
        .await
        .unwrap_err();
    assert_eq!(looping.error, SandboxError::Timeout);
}
