//! Captured files (Kiln extension): an agent's code saves files with
//! `files.write`, reads and lists them; clients read the tree and each file
//! (raw text or base64) through the SDK; paths stay inside the session and
//! quotas hold.

use kiln_providers::fake::{FakeProvider, Reply};
use kiln_sdk::api::CreateSession;
use serde_json::json;

use crate::harness::{TestApp, api_err};

fn code(js: &str) -> Reply {
    Reply::tool_call("execute_js", json!({ "code": js }))
}

pub(crate) async fn code_saves_files_that_clients_read(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let id = c.create_session(&CreateSession::default()).await.unwrap().id;
    fake.push(code(
        r##"await files.write("reports/summary.md", "# Summary\nAll good.");
        await files.write("data.json", { rows: 3 });
        await files.write("logo.bin", "AAEC/w==", { encoding: "base64" });
        await files.write("reports/summary.md", "# Summary\nAll good, twice.");
        const list = await files.list();
        const text = await files.read("reports/summary.md");
        let binary;
        try { await files.read("logo.bin"); } catch (e) { binary = String(e.message || e); }
        let escaped;
        try { await files.write("../outside.txt", "x"); } catch (e) { escaped = String(e.message || e); }
        let missing;
        try { await files.read("nope.txt"); } catch (e) { missing = String(e.message || e); }
        ({ paths: list.map(f => f.path + ":" + f.size), text, binary, escaped, missing,
           b64: await files.read("logo.bin", { encoding: "base64" }) })"##,
    ));
    fake.push(Reply::text("Saved."));
    let events = c
        .run_agent(&id, "Write the report")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
    let result = events.iter().find(|e| e.raw.kind == "execute_js_result").unwrap();
    let value: serde_json::Value = serde_json::from_str(result.raw.content.as_deref().unwrap()).unwrap();
    assert_eq!(
        value["paths"],
        json!(["data.json:10", "logo.bin:4", "reports/summary.md:26"]),
        "{value}"
    );
    assert_eq!(value["text"], "# Summary\nAll good, twice.");
    assert!(value["binary"].as_str().unwrap().contains("not text"), "{value}");
    assert!(
        value["escaped"].as_str().unwrap().contains("inside the session"),
        "{value}"
    );
    assert!(value["missing"].as_str().unwrap().contains("no file"), "{value}");
    assert_eq!(value["b64"], "AAEC/w==");

    // Clients: the tree and each file.
    let tree = c.list_files(&id).await.unwrap();
    let listed: Vec<(&str, i64)> = tree.iter().map(|f| (f.path.as_str(), f.size)).collect();
    assert_eq!(
        listed,
        [("data.json", 10), ("logo.bin", 4), ("reports/summary.md", 26)]
    );
    let report = c.read_file(&id, "reports/summary.md").await.unwrap();
    assert_eq!(
        (report.encoding.as_str(), report.content.as_str(), report.size),
        ("raw", "# Summary\nAll good, twice.", 26)
    );
    assert_eq!(
        c.read_file(&id, "data.json").await.unwrap().content,
        r#"{"rows":3}"#
    );
    let logo = c.read_file(&id, "logo.bin").await.unwrap();
    assert_eq!(
        (logo.encoding.as_str(), logo.content.as_str()),
        ("base64", "AAEC/w==")
    );
    api_err(c.read_file(&id, "../secrets.txt").await, 400, "validation_failed");
    api_err(
        c.read_file(&id, "reports/../../x").await,
        400,
        "validation_failed",
    );
    api_err(c.read_file(&id, "missing.txt").await, 404, "NOT_FOUND");
    api_err(c.list_files("missing").await, 404, "NOT_FOUND");
    let (_, other) = app.key_for("files-other").await;
    api_err(other.list_files(&id).await, 404, "NOT_FOUND");
    api_err(other.read_file(&id, "data.json").await, 404, "NOT_FOUND");

    // Quotas: 1 MiB a file, 10 MiB in all.
    fake.push(code(
        r#"const mib = "x".repeat(1024 * 1024);
        let big;
        try { await files.write("big.txt", mib + "x"); } catch (e) { big = String(e.message || e); }
        let total;
        try { for (let i = 0; i < 11; i++) await files.write(`part${i}.txt`, mib); }
        catch (e) { total = String(e.message || e); }
        ({ big, total, count: (await files.list()).length })"#,
    ));
    fake.push(Reply::text("Done."));
    let events = c
        .run_agent(&id, "Fill it")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
    let result = events.iter().find(|e| e.raw.kind == "execute_js_result").unwrap();
    let value: serde_json::Value = serde_json::from_str(result.raw.content.as_deref().unwrap()).unwrap();
    assert!(
        value["big"].as_str().unwrap().contains("at most 1048576 bytes"),
        "{value}"
    );
    assert!(value["total"].as_str().unwrap().contains("together"), "{value}");
    assert_eq!(
        value["count"],
        3 + 9,
        "nine 1 MiB parts fit beside the first files: {value}"
    );

    // A deleted session takes its files.
    c.delete_session(&id).await.unwrap();
    api_err(c.list_files(&id).await, 404, "NOT_FOUND");
}
