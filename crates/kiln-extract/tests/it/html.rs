//! HTML becomes Markdown without what a reader never sees.

use kiln_core::rag::DocumentKind;

use crate::markdown;

#[test]
fn structure_is_kept_and_scripts_and_styles_are_dropped() {
    let html = r#"<!doctype html>
<html>
<head>
  <title>Kiln  Guide</title>
  <style>body { color: red; }</style>
  <script>var secret = "tracking-id";</script>
</head>
<body>
  <noscript>Please enable JavaScript</noscript>
  <h2>Install</h2>
  <p>Run <code>kiln serve</code> and open <a href="http://localhost:8080">the UI</a>.</p>



  <ul><li>Fast</li><li>Small</li></ul>
  <script>document.write("injected")</script>
  <h3>Tables</h3>
  <table><tr><th>Key</th><th>Value</th></tr><tr><td>port</td><td>8080</td></tr></table>
</body>
</html>"#;

    let markdown = markdown(DocumentKind::Html, html.as_bytes());

    // The title stands in for the missing <h1>; nothing from <head>,
    // <script>, <style> or <noscript> remains; tables stay GFM tables.
    assert_eq!(
        markdown,
        concat!(
            "# Kiln Guide\n",
            "\n",
            "## Install\n",
            "\n",
            "Run `kiln serve` and open [the UI](http://localhost:8080).\n",
            "\n",
            "*   Fast\n",
            "*   Small\n",
            "\n",
            "### Tables\n",
            "\n",
            "| Key  | Value |\n",
            "| ---- | ----- |\n",
            "| port | 8080  |",
        )
    );
}
