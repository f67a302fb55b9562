//! HTML to Markdown with `htmd`, without the parts a reader never sees
//! (scripts, styles, `noscript`, templates, inline SVG).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use htmd::element_handler::Handlers;
use htmd::{Element, HtmlToMarkdown};

use crate::text::collapse_blank_lines;

const SKIPPED: &[&str] = &["script", "style", "noscript", "template", "svg"];

/// Converts `html`; the page's `<title>` becomes a leading `# ` heading when
/// the page has no `<h1>` of its own.
pub(crate) fn to_markdown(html: &str) -> Result<String, String> {
    let title = Arc::new(OnceLock::<String>::new());
    let has_h1 = Arc::new(AtomicBool::new(false));

    let converter = HtmlToMarkdown::builder()
        .skip_tags(SKIPPED.to_vec())
        .add_handler(vec!["title"], {
            let title = Arc::clone(&title);
            move |handlers: &dyn Handlers, element: Element| {
                let text = handlers.walk_children(element.node).content;
                let _first_title_wins = title.set(text.split_whitespace().collect::<Vec<_>>().join(" "));
                None
            }
        })
        .add_handler(vec!["h1"], {
            let has_h1 = Arc::clone(&has_h1);
            move |handlers: &dyn Handlers, element: Element| {
                has_h1.store(true, Ordering::Relaxed);
                handlers.fallback(element)
            }
        })
        .build();
    let markdown = converter
        .convert(html)
        .map_err(|e| format!("could not read the HTML: {e}"))?;
    let markdown = collapse_blank_lines(&markdown);

    match title
        .get()
        .filter(|t| !t.is_empty() && !has_h1.load(Ordering::Relaxed))
    {
        Some(title) if markdown.is_empty() => Ok(format!("# {title}")),
        Some(title) => Ok(format!("# {title}\n\n{markdown}")),
        None => Ok(markdown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_h1_wins_over_the_title() {
        let markdown = to_markdown("<title>Tab text</title><h1>Real</h1><p>x</p>").unwrap();
        assert_eq!(markdown, "# Real\n\nx");
    }

    #[test]
    fn svg_titles_are_not_page_titles() {
        let markdown = to_markdown("<body><svg><title>icon</title></svg><p>Body</p></body>").unwrap();
        assert_eq!(markdown, "Body");
    }
}
