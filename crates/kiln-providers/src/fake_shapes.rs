//! What the fake provider checks in the requests it receives, as the
//! vendors do: a request they would refuse with 400 is refused here too,
//! with a message that names the rule, so a test that sends a malformed
//! history, a tool result without its call, or an Anthropic request without
//! `max_tokens` fails where the real vendor would.
//!
//! Only rules the vendors document and enforce are checked; fields they
//! ignore are not.

use std::collections::HashSet;

use serde_json::Value;

/// An OpenAI chat completions request.
pub(crate) fn check_openai(body: &Value) -> Result<(), String> {
    non_empty_str(body, "model")?;
    let messages = non_empty_array(body, "messages")?;
    let mut open_calls: HashSet<&str> = HashSet::new();
    for (i, message) in messages.iter().enumerate() {
        let at = |what: &str| format!("messages[{i}]: {what}");
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| at("`role` is required"))?;
        match role {
            "system" | "developer" | "user" => {
                if !(message["content"].is_string() || message["content"].is_array()) {
                    return Err(at("`content` must be a string or an array of parts"));
                }
            }
            "assistant" => {
                if let Some(calls) = message.get("tool_calls").filter(|c| !c.is_null()) {
                    let calls = calls
                        .as_array()
                        .ok_or_else(|| at("`tool_calls` must be an array"))?;
                    for call in calls {
                        let id = call["id"].as_str().filter(|id| !id.is_empty());
                        let id = id.ok_or_else(|| at("every tool call needs an `id`"))?;
                        if call["type"] != "function"
                            || !call["function"]["name"].is_string()
                            || !call["function"]["arguments"].is_string()
                        {
                            return Err(at(
                                "a tool call is `{type: \"function\", function: {name, arguments (a JSON string)}}`",
                            ));
                        }
                        open_calls.insert(id);
                    }
                } else if message["content"].is_null() {
                    return Err(at("an assistant message needs `content` or `tool_calls`"));
                }
            }
            "tool" => {
                let id = message["tool_call_id"].as_str().unwrap_or("");
                if !open_calls.contains(id) {
                    return Err(at(&format!(
                        "`tool_call_id` {id:?} answers no tool call of an earlier assistant message"
                    )));
                }
                if !(message["content"].is_string() || message["content"].is_array()) {
                    return Err(at(
                        "a tool message's `content` must be a string or an array of parts",
                    ));
                }
            }
            other => return Err(at(&format!("unknown role `{other}`"))),
        }
    }
    if let Some(tools) = body.get("tools").filter(|t| !t.is_null()) {
        let tools = tools.as_array().ok_or("`tools` must be an array")?;
        for tool in tools {
            if tool["type"] != "function" || !tool["function"]["name"].is_string() {
                return Err(
                    "a tool is `{type: \"function\", function: {name, description, parameters}}`".into(),
                );
            }
        }
    }
    for key in ["max_tokens", "max_completion_tokens"] {
        if let Some(n) = body.get(key).filter(|n| !n.is_null())
            && n.as_u64().is_none_or(|n| n == 0)
        {
            return Err(format!("`{key}` must be a positive integer"));
        }
    }
    Ok(())
}

/// An Anthropic messages request.
pub(crate) fn check_anthropic(body: &Value) -> Result<(), String> {
    non_empty_str(body, "model")?;
    if body["max_tokens"].as_u64().is_none_or(|n| n == 0) {
        return Err("max_tokens: Field required (a positive integer)".into());
    }
    if let Some(system) = body.get("system").filter(|s| !s.is_null())
        && !(system.is_string() || system.is_array())
    {
        return Err("`system` must be a string or an array of text blocks".into());
    }
    let messages = non_empty_array(body, "messages")?;
    let mut previous_tool_uses: Vec<&str> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let at = |what: &str| format!("messages.{i}: {what}");
        let role = message["role"].as_str().unwrap_or("");
        let expected = if i % 2 == 0 { "user" } else { "assistant" };
        if role != expected {
            return Err(at(&format!(
                "roles must alternate, starting with `user`; found `{role}` where `{expected}` belongs"
            )));
        }
        let blocks: Vec<&Value> = match &message["content"] {
            Value::String(_) => Vec::new(),
            Value::Array(blocks) => blocks.iter().collect(),
            _ => return Err(at("`content` must be a string or an array of blocks")),
        };
        if blocks.is_empty() && message["content"].as_str().is_none_or(str::is_empty) {
            return Err(at("all messages must have non-empty content"));
        }
        let results: Vec<&str> = blocks
            .iter()
            .filter(|b| b["type"] == "tool_result")
            .map(|b| b["tool_use_id"].as_str().unwrap_or(""))
            .collect();
        if role == "user" {
            for id in &previous_tool_uses {
                if !results.contains(id) {
                    return Err(at(&format!(
                        "`tool_use` ids were found without `tool_result` blocks immediately after: {id}"
                    )));
                }
            }
            if let Some(stray) = results.iter().find(|id| !previous_tool_uses.contains(id)) {
                return Err(at(&format!(
                    "unexpected `tool_use_id` found in `tool_result` blocks: {stray}"
                )));
            }
            previous_tool_uses.clear();
        } else {
            previous_tool_uses = blocks
                .iter()
                .filter(|b| b["type"] == "tool_use")
                .map(|b| b["id"].as_str().unwrap_or(""))
                .collect();
        }
    }
    Ok(())
}

/// An OpenAI embeddings request.
pub(crate) fn check_embeddings(body: &Value) -> Result<(), String> {
    non_empty_str(body, "model")?;
    match &body["input"] {
        Value::String(_) => Ok(()),
        Value::Array(items) if !items.is_empty() && items.len() <= 2048 => Ok(()),
        _ => Err("`input` must be a string or an array of 1 to 2048 strings".into()),
    }
}

/// A Gemini generateContent request.
pub(crate) fn check_gemini(body: &Value) -> Result<(), String> {
    let contents = non_empty_array(body, "contents")?;
    for (i, content) in contents.iter().enumerate() {
        let role = content["role"].as_str().unwrap_or("user");
        if role != "user" && role != "model" {
            return Err(format!(
                "contents[{i}]: please use a valid role: user, model (found `{role}`)"
            ));
        }
        if content["parts"].as_array().is_none_or(Vec::is_empty) {
            return Err(format!("contents[{i}].parts: must not be empty"));
        }
    }
    Ok(())
}

fn non_empty_str(body: &Value, key: &str) -> Result<(), String> {
    match body.get(key).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(()),
        _ => Err(format!("`{key}` is required")),
    }
}

fn non_empty_array<'a>(body: &'a Value, key: &str) -> Result<&'a Vec<Value>, String> {
    match body.get(key).and_then(Value::as_array) {
        Some(items) if !items.is_empty() => Ok(items),
        _ => Err(format!("`{key}` must be a non-empty array")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn openai_tool_results_need_their_call() {
        let ok = json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"}]});
        assert_eq!(check_openai(&ok), Ok(()));
        let stray = json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "tool", "tool_call_id": "c9", "content": "42"}]});
        assert!(check_openai(&stray).unwrap_err().contains("answers no tool call"));
        assert!(check_openai(&json!({"model": "m", "messages": []})).is_err());
        assert!(check_openai(&json!({"messages": [{"role": "user", "content": "x"}]})).is_err());
    }

    #[test]
    fn anthropic_needs_max_tokens_alternation_and_results() {
        let ok = json!({"model": "m", "max_tokens": 10, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"}]}]});
        assert_eq!(check_anthropic(&ok), Ok(()));
        let mut no_max = ok.clone();
        no_max.as_object_mut().unwrap().remove("max_tokens");
        assert!(check_anthropic(&no_max).unwrap_err().contains("max_tokens"));
        let twice = json!({"model": "m", "max_tokens": 10, "messages": [
            {"role": "user", "content": "a"}, {"role": "user", "content": "b"}]});
        assert!(check_anthropic(&twice).unwrap_err().contains("alternate"));
        let unanswered = json!({"model": "m", "max_tokens": 10, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": "what now?"}]});
        assert!(
            check_anthropic(&unanswered)
                .unwrap_err()
                .contains("without `tool_result`")
        );
    }

    #[test]
    fn gemini_needs_roles_and_parts() {
        assert_eq!(
            check_gemini(&json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})),
            Ok(())
        );
        assert!(
            check_gemini(&json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]})).is_err()
        );
        assert!(check_gemini(&json!({"contents": [{"role": "user", "parts": []}]})).is_err());
    }
}
