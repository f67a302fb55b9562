//! CONTRACT §2.13: prompt templates.

use kiln_sdk::api::{CreatePromptTemplate, UpdatePromptTemplate};

use crate::backends;
use crate::harness::{TestApp, api_err};

backends!(template_lifecycle);

async fn template_lifecycle(app: &TestApp) {
    let c = &app.client;
    assert!(c.list_prompt_templates().await.unwrap().is_empty());
    let greeting = c
        .create_prompt_template(&CreatePromptTemplate {
            name: "greeting".into(),
            content: "Hello {{ name }}, order {{order_id}} ships {{name}}".into(),
            variables: None,
        })
        .await
        .unwrap();
    assert_eq!(greeting.variables, ["name", "order_id"]);
    assert_eq!(greeting.project_id, greeting.app_id);

    let explicit = c
        .create_prompt_template(&CreatePromptTemplate {
            name: "plain".into(),
            content: "No placeholders".into(),
            variables: Some(vec!["extra".into()]),
        })
        .await
        .unwrap();
    assert_eq!(explicit.variables, ["extra"]);

    api_err(
        c.create_prompt_template(&CreatePromptTemplate {
            name: "greeting".into(),
            content: "dup".into(),
            variables: None,
        })
        .await,
        409,
        "conflict",
    );
    api_err(
        c.create_prompt_template(&CreatePromptTemplate {
            name: "x".into(),
            content: String::new(),
            variables: None,
        })
        .await,
        400,
        "validation_failed",
    );

    let names: Vec<String> = c
        .list_prompt_templates()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["greeting", "plain"]);
    assert_eq!(c.get_prompt_template(&greeting.id).await.unwrap(), greeting);

    // Go sends empty name/content: they mean unchanged, as do missing variables.
    let same = c
        .update_prompt_template(
            &greeting.id,
            &UpdatePromptTemplate {
                name: Some(String::new()),
                content: Some(String::new()),
                variables: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (same.name.as_str(), same.content.as_str()),
        ("greeting", greeting.content.as_str())
    );
    assert_eq!(same.variables, greeting.variables);

    let changed = c
        .update_prompt_template(
            &greeting.id,
            &UpdatePromptTemplate {
                name: Some("welcome".into()),
                content: Some("Welcome {{who}}".into()),
                variables: Some(vec!["who".into()]),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (changed.name.as_str(), changed.content.as_str()),
        ("welcome", "Welcome {{who}}")
    );
    assert_eq!(changed.variables, ["who"]);
    assert_eq!(changed.created_at, greeting.created_at);
    assert_eq!(c.get_prompt_template(&greeting.id).await.unwrap(), changed);

    // Renaming onto a taken name is a conflict and changes nothing.
    api_err(
        c.update_prompt_template(
            &greeting.id,
            &UpdatePromptTemplate {
                name: Some("plain".into()),
                content: None,
                variables: None,
            },
        )
        .await,
        409,
        "conflict",
    );
    assert_eq!(c.get_prompt_template(&greeting.id).await.unwrap().name, "welcome");

    c.delete_prompt_template(&greeting.id).await.unwrap();
    api_err(c.get_prompt_template(&greeting.id).await, 404, "NOT_FOUND");
    api_err(c.delete_prompt_template(&greeting.id).await, 404, "NOT_FOUND");
    api_err(
        c.update_prompt_template(&greeting.id, &UpdatePromptTemplate::default())
            .await,
        404,
        "NOT_FOUND",
    );
}
