//! The platform prompt (what the model is told about the sandbox and the
//! code format), the tools offered to it, and reading code out of a reply.

use crate::agents::config::{McpServerSpec, ModuleSkill};
use crate::agents::modules::MODULE_CHECK_TIME;
use crate::llm::ToolSpec;
use crate::rag::Index;
use crate::sandbox::MAX_MODULE_CALL_NOTES;

/// The name of the one tool that runs code.
pub const EXECUTE_JS: &str = "execute_js";

/// The sandbox's primitives: the functions the runtime registers in every
/// block (`host.rs` registers exactly these) and their documentation, from
/// which both the platform prompt and the skill authoring guide are built,
/// so neither can drift from what the sandbox offers.
pub struct Primitive {
    /// The global names it registers.
    pub names: &'static [&'static str],
    /// One line of Markdown: the call, what it returns, what it does.
    pub doc: &'static str,
}

pub const PRIMITIVES: [Primitive; 7] = [
    Primitive {
        names: &["search"],
        doc: r#"`await search(query, { top_k = 5, index })` → `[{ content, score, source, document_id, index_id, chunk_index }]`: hybrid search over this session's knowledge indexes (best first, score in [0, 1]). `index` narrows to one index id of the session's scope."#,
    },
    Primitive {
        names: &["fetch"],
        doc: r#"`await fetch(url, { method = "GET", headers = {}, body })` → `{ status, ok, url, headers, body, json, truncated }`: an HTTP request to a public address. `body` may be a string or an object (sent as JSON); `json` is the parsed body when the response is JSON. Private and local addresses are refused."#,
    },
    Primitive {
        names: &["web_search"],
        doc: r#"`await web_search(query, { count = 5 })` → `[{ title, url, snippet }]`: a web search (Brave or SearXNG, as the project configured it; an error says so when it has none). `fetch` a result's `url` to read the page."#,
    },
    Primitive {
        names: &["ai"],
        doc: r#"`await ai(prompt)` → string: asks the model a self-contained question (no history, no tools), e.g. to summarise or classify text."#,
    },
    Primitive {
        names: &["input"],
        doc: r#"`await input({ type: "confirm" | "choice" | "text", message, options, placeholder })` → the person's answer: a boolean for `confirm`, one of `options` for `choice`, a string for `text`. The turn pauses until they answer. Use it to ask before acting, or when you need information only they have. `input("question")` asks for text."#,
    },
    Primitive {
        names: &["data.get", "data.set"],
        doc: r#"`await data.get(key)` → the value stored under `key` in this session (`data.get()` returns everything); `await data.set(key, value)` stores it (`data.set({ key: value, ... })` stores several; a `null` value removes the key). Data lasts for the whole session."#,
    },
    Primitive {
        names: &["files.write", "files.read", "files.list"],
        doc: r#"`await files.write(path, content)` saves a file the user can download from this session (text; binary as base64 with `{ encoding: "base64" }`; an object is saved as JSON); `await files.read(path)` → its text; `await files.list()` → `[{ path, size, updated_at }]`. Paths are relative like `reports/summary.md`; 1 MiB a file, 10 MiB in all."#,
    },
];

/// Everything before the primitives' list of the platform prompt.
const PROMPT_HEAD: &str = r#"You are an agent running on Kiln. You work by writing JavaScript that Kiln runs in a sandbox, reading the result, and then either writing more code or answering.

## How to run code
Call the `execute_js` tool with `{"code": "<JavaScript>"}`. If you cannot call tools, write exactly one fenced block tagged `js` instead:
```js
const hits = await search("refund policy", { top_k: 3 });
hits.map(h => h.source + ": " + h.content.slice(0, 200))
```
Text before the code is shown to the user as your reasoning. The code's result is the value of its last expression (or of a top-level `return`), as JSON; `console.log` output is captured too. You get both back and continue. When you have the answer, reply with plain text and no code: that reply ends the turn.

## The sandbox
Modern JavaScript (ES2023) with top-level `await`. Every block starts fresh: variables do not survive between blocks (use `data` to keep things). There is no file system and there are no timers; `require(name)` reaches only this agent's skill modules and MCP servers (listed below when it has any). Each block is limited in time, memory and output. Every primitive below is async: `await` it.

"#;

/// Everything after it.
const PROMPT_TAIL: &str = r#"- `console.log(...)` → captured output, returned with the result.

Errors thrown by your code (or by a primitive) come back as the result: read them, fix the code and try again. Do not repeat a failing block unchanged."#;

/// The platform part of every agent's system prompt.
pub fn platform_prompt() -> String {
    let mut prompt = String::from(PROMPT_HEAD);
    for primitive in &PRIMITIVES {
        prompt.push_str("- ");
        prompt.push_str(primitive.doc);
        prompt.push('\n');
    }
    prompt.push_str(PROMPT_TAIL);
    prompt
}

/// The sandbox's globals a skill should not be named after: the
/// primitives (`data`, not `data.get`), `console` and `require`.
pub fn reserved_names() -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in PRIMITIVES.iter().flat_map(|p| p.names.iter()) {
        let global = name.split('.').next().unwrap_or(name).to_owned();
        if !names.contains(&global) {
            names.push(global);
        }
    }
    names.extend(["console".to_owned(), "require".to_owned()]);
    names
}

/// `GET /skills/authoring-guide`: how to write skills, with the sandbox's
/// primitives as the runtime registers them.
pub fn skill_authoring_guide() -> String {
    let mut guide = String::from(
        "# Writing skills for Kiln agents\n\n\
         Skills live beside an agent, in `kiln/agents/<id>/skills/`, and arrive with every sync and deploy.\n\n\
         ## Prompt skills: `skills/<name>.md`\n\n\
         Markdown that joins the agent's system prompt after `persona.md`, under `## Skill: <name>`, in name \
         order. Use them for policies, tone, procedures and examples the model should follow.\n\n\
         ## Module skills: `skills/<name>.js`\n\n\
         An ES module (`export function …`, `export const …`, `export async function …`) that code in the \
         sandbox reaches as `require('<name>')`, which returns its exports (frozen). Start the file with a \
         comment line: it becomes the skill's description. The system prompt lists each module with its \
         exports and their parameter names, so name parameters for the model to read.\n\n\
         - Exported functions may call the primitives below (`await search(…)`, `await fetch(…)`); each call \
         of an exported function from a block shows in the session as a `skill_call` event \
         (at most {NOTES} per block).\n\
         - The top level runs once per block, when the module is first required: define functions and \
         constants there. It cannot `await`, and at validation it runs without the primitives and must finish \
         within {CHECK_TIME} seconds.\n\
         - A module may `require` another skill of the same agent; `import` is not available.\n\
         - `require` also reaches the agent's MCP servers (`agent.jsonc → mcp`): \
         `await require('<server>').<tool>({ …args })` calls the tool, so a skill can wrap them too.\n\
         - Validation compiles each module and runs its top level: a syntax error is a fatal issue at its \
         line (`skill_syntax`), a throw is `skill_error`, a top level past the time limit `skill_timeout`. \
         `POST /api/sdk/skills/validate` with `{\"source\", \"name\"}` checks one module alone.\n\n\
         ```js\n\
         // Prices orders in euros.\n\
         export const CURRENCY = \"EUR\";\n\
         export function quote(items, coupon) {\n\
         \x20 const total = items.reduce((sum, item) => sum + item.price * item.quantity, 0);\n\
         \x20 return coupon === \"WELCOME10\" ? total * 0.9 : total;\n\
         }\n\
         ```\n\n\
         In a block: `const { quote } = require(\"pricing\"); quote([{ price: 5, quantity: 2 }])`.\n\n\
         ## What code in the sandbox can call\n\n",
    )
    .replace("{NOTES}", &MAX_MODULE_CALL_NOTES.to_string())
    .replace("{CHECK_TIME}", &MODULE_CHECK_TIME.as_secs().to_string());
    guide.push_str(
        "Modern JavaScript (ES2023) with top-level `await`; every block starts fresh, with no file system, \
         timers or network but through `fetch`. Every primitive is async.\n\n",
    );
    for primitive in &PRIMITIVES {
        guide.push_str("- ");
        guide.push_str(primitive.doc);
        guide.push('\n');
    }
    guide.push_str("\nReserved names (do not name a skill after them): ");
    let reserved: Vec<String> = reserved_names().iter().map(|n| format!("`{n}`")).collect();
    guide.push_str(&reserved.join(", "));
    guide.push_str(".\n");
    guide
}

/// The tool every session has.
pub fn execute_js_tool() -> ToolSpec {
    ToolSpec {
        name: EXECUTE_JS.to_owned(),
        description: "Run JavaScript in Kiln's sandbox and get its result (the last expression's value as JSON, \
                      plus console output). The sandbox offers search, fetch, ai, input and data; see the system \
                      prompt."
            .to_owned(),
        parameters: serde_json::json!({
            "type": "object",
            "properties": { "code": { "type": "string", "description": "The JavaScript to run." } },
            "required": ["code"],
        }),
    }
}

/// The function-call tools a session may add (`tools` on create).
pub fn native_tool(name: &str) -> Option<ToolSpec> {
    let (description, parameters) = match name {
        "search" => (
            "Search the session's knowledge indexes.",
            serde_json::json!({
                "type": "object",
                "properties": {
                    "query": { "type": "string" },
                    "top_k": { "type": "integer", "minimum": 1, "maximum": 20 },
                    "index": { "type": "string", "description": "One index id of the session's scope." },
                },
                "required": ["query"],
            }),
        ),
        "fetch" => (
            "Make an HTTP request to a public address.",
            serde_json::json!({
                "type": "object",
                "properties": {
                    "url": { "type": "string" },
                    "method": { "type": "string" },
                    "headers": { "type": "object", "additionalProperties": { "type": "string" } },
                    "body": { "type": "string" },
                },
                "required": ["url"],
            }),
        ),
        "list_stores" => (
            "List the knowledge indexes this session may search.",
            serde_json::json!({ "type": "object", "properties": {} }),
        ),
        _ => return None,
    };
    Some(ToolSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        parameters,
    })
}

/// The whole system prompt: the platform part, the indexes in scope, the
/// agent's skill modules and MCP servers, and the session's persona.
pub fn system_prompt(
    indexes: Option<&[Index]>,
    persona: &str,
    modules: &[ModuleSkill],
    mcp_servers: &[McpServerSpec],
) -> String {
    let mut prompt = platform_prompt();
    prompt.push_str("\n\n## Knowledge\n");
    match indexes {
        None => prompt.push_str("`search` is disabled in this session.\n"),
        Some([]) => prompt.push_str("No knowledge indexes exist yet; `search` finds nothing.\n"),
        Some(indexes) => {
            prompt.push_str("`search` covers these indexes:\n");
            for index in indexes {
                let description = if index.description.is_empty() {
                    String::new()
                } else {
                    format!(": {}", index.description)
                };
                prompt.push_str(&format!("- {} (id `{}`){description}\n", index.name, index.id));
            }
        }
    }
    if !modules.is_empty() {
        prompt.push_str(
            "\n## Skill modules\nThis agent's own code, loaded with `require(name)`. `await` each call: it does no harm when a function is not async.\n",
        );
        for module in modules {
            prompt.push_str(&format!("- `require(\"{}\")`", module.name));
            if !module.description.is_empty() {
                prompt.push_str(&format!(": {}", module.description));
            }
            prompt.push('\n');
            for export in &module.exports {
                match &export.params {
                    Some(params) => {
                        prompt.push_str(&format!("  - `{}({})`\n", export.name, params.join(", ")))
                    }
                    None => prompt.push_str(&format!("  - `{}` (a value)\n", export.name)),
                }
            }
        }
    }
    if mcp_servers.iter().any(|s| !s.tools.is_empty()) {
        prompt.push_str(
            "\n## MCP tools\nTools of outside servers, reached with `require(server)`: `await require(\"github\").create_issue({ title: \"…\" })`. Each takes one object of arguments (the JSON Schema after it) and resolves to the tool's structured result, or its text; a tool error is thrown.\n",
        );
        for server in mcp_servers.iter().filter(|s| !s.tools.is_empty()) {
            prompt.push_str(&format!("- `require(\"{}\")`\n", server.name));
            for tool in &server.tools {
                let description = tool.description.lines().next().unwrap_or("").trim();
                let schema = if tool.input_schema.is_null() {
                    "{}".to_owned()
                } else {
                    tool.input_schema.to_string()
                };
                prompt.push_str(&format!("  - `{}(args)`", tool.name));
                if !description.is_empty() {
                    prompt.push_str(&format!(": {description}"));
                }
                prompt.push_str(&format!(" Arguments: `{schema}`\n"));
            }
        }
    }
    let persona = persona.trim();
    if !persona.is_empty() {
        prompt.push_str("\n## Your instructions\n");
        prompt.push_str(persona);
        prompt.push('\n');
    }
    prompt
}

/// The first fenced block tagged `js`, `javascript` or `ts` in `text`:
/// `(text before it, code)`.
pub fn fenced_code(text: &str) -> Option<(String, String)> {
    let mut offset = 0;
    while let Some(found) = text[offset..].find("```") {
        let open = offset + found;
        let after_ticks = &text[open + 3..];
        let line_end = after_ticks.find('\n')?;
        let tag = after_ticks[..line_end].trim().to_ascii_lowercase();
        let body_start = open + 3 + line_end + 1;
        let close = text[body_start..].find("```").map(|c| body_start + c);
        if matches!(tag.as_str(), "js" | "javascript" | "ts" | "typescript") {
            let code = match close {
                Some(close) => &text[body_start..close],
                None => &text[body_start..],
            };
            return Some((text[..open].trim().to_owned(), code.trim_end().to_owned()));
        }
        match close {
            Some(close) => offset = close + 3,
            None => return None,
        }
    }
    None
}

/// A one-line summary of model text for `args.summary`.
pub fn summary_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    crate::runtime::event::first_chars(line, 120)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_js_block_is_the_code() {
        let reply = "Let me check.\n```python\nprint(1)\n```\nthen\n```js\nconst a = 1;\na + 1\n```\nignored";
        let (before, code) = fenced_code(reply).unwrap();
        assert_eq!(code, "const a = 1;\na + 1");
        assert!(before.starts_with("Let me check."));
        assert_eq!(fenced_code("no code here").as_ref(), None);
        assert_eq!(fenced_code("```\nplain\n```").as_ref(), None);
        let (_, unclosed) = fenced_code("```javascript\n1 + 1").unwrap();
        assert_eq!(unclosed, "1 + 1");
    }

    #[test]
    fn the_prompt_documents_every_primitive_and_the_format() {
        let prompt = system_prompt(Some(&[]), "You are a support agent", &[], &[]);
        for primitive in [
            "search(",
            "fetch(",
            "ai(",
            "input(",
            "data.get(",
            "data.set(",
            "files.write(",
            "console.log",
            "execute_js",
        ] {
            assert!(prompt.contains(primitive), "{primitive}");
        }
        assert!(prompt.ends_with("You are a support agent\n"));
        assert!(system_prompt(None, "", &[], &[]).contains("`search` is disabled"));
        let pricing = ModuleSkill {
            name: "pricing".into(),
            description: "Prices orders.".into(),
            source: String::new(),
            exports: vec![
                crate::agents::config::SkillExport {
                    name: "quote".into(),
                    params: Some(vec!["items".into(), "coupon".into()]),
                },
                crate::agents::config::SkillExport {
                    name: "CURRENCY".into(),
                    params: None,
                },
            ],
        };
        let prompt = system_prompt(None, "", &[pricing], &[]);
        assert!(prompt.contains("- `require(\"pricing\")`: Prices orders.\n  - `quote(items, coupon)`\n  - `CURRENCY` (a value)\n"), "{prompt}");
    }
}
